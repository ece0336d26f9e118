/**
 * `@idempotent-mq/testing/vitest`: the contract suites, as vitest suites any adapter or transport runs
 * with one call. Apart from the main entry so that an app that imports the in-memory broker or the fake
 * clock needs no vitest.
 */
export { type CacheContractHarness, describeCacheContract } from './cache-contract.js';
export { describeStoreContract, type StoreContractHarness } from './store-contract.js';
export { describeTransportContract, type TransportContractHarness } from './transport-contract.js';
