/** @idempotent-mq/rocketmq/testing: a gRPC test double of a RocketMQ 5 proxy, for the real client. */
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
