/**
 * @idempotent-mq/rocketmq/testing: a gRPC test double of a RocketMQ 5 proxy, for the real client, and a
 * way to kill a transport as a crash would.
 */
export { killTransport } from './kill-transport.js';
export {
  type AckRecord,
  BrokerFaults,
  type ClientRecord,
  type DeadLetterRecord,
  type DeliveryRecord,
  type InvisibleChangeRecord,
  RocketMQTestBroker,
  type RocketMQTestBrokerOptions,
  type StoredMessage,
} from './rocketmq-test-broker.js';
