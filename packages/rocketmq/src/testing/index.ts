/**
 * @idempotent-mq/rocketmq/testing: a way to kill a transport as a crash would. The gRPC test broker is
 * `@idempotent-mq/rocketmq-testing`.
 */
export { killTransport } from './kill-transport.js';
