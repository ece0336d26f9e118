/** @idempotent-mq/testing: contract suites for stores and caches, a fake clock, fault injection. */
export { type CacheContractHarness, describeCacheContract } from './cache-contract.js';
export { FakeClock, flush } from './fake-clock.js';
export { type Fault, FaultyCache, FaultyStore } from './faults.js';
export {
  type BrokerFaults,
  type DeadLetter,
  type DeliveryCause,
  InMemoryBroker,
  type InMemoryBrokerOptions,
  InMemoryTransport,
  seededRandom,
} from './in-memory-broker.js';
export { describeStoreContract, type StoreContractHarness } from './store-contract.js';
export { describeTransportContract, type TransportContractHarness } from './transport-contract.js';
