/**
 * @idempotent-mq/rocketmq-testing: a gRPC test double of a RocketMQ 5 proxy and broker, for tests that
 * drive the real rocketmq-client-nodejs (and so `RocketMQTransport`), with fault injection.
 */
export { BrokerFaults } from './broker-faults.js';
export type { RocketMQTestBrokerOptions } from './options.js';
export type {
  AckRecord,
  ClientRecord,
  DeadLetterRecord,
  DeliveryRecord,
  InvisibleChangeRecord,
  StoredMessage,
  TopicPerm,
} from './records.js';
export { RocketMQTestBroker } from './rocketmq-test-broker.js';
