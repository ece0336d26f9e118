/**
 * @idempotent-mq/testing: the in-memory broker, a fake clock, fault injection. The contract suites, which
 * need vitest, are at `@idempotent-mq/testing/vitest`.
 */
export { FakeClock, flush } from './fake-clock.js';
export { type Fault, FaultyCache, FaultyStore } from './faults.js';
export {
  advanceUntilIdle,
  type BrokerFaults,
  type DeadLetter,
  type DeliveryCause,
  InMemoryBroker,
  type InMemoryBrokerOptions,
  InMemoryTransport,
  seededRandom,
} from './in-memory-broker.js';
