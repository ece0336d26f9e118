/** Builds the demo's storage from its options: the embedded defaults, or the servers it is given. */
import { MemoryIdempotencyCache, MemoryIdempotencyStore } from '@idempotent-mq/core';
import { MemoryLedger } from './ledger.js';
import type { Storage } from './scenario.js';

export type StoreKind = 'memory';

export interface StorageOptions {
  readonly store: StoreKind;
}

export async function openStorage(options: StorageOptions): Promise<Storage> {
  switch (options.store) {
    case 'memory':
      return {
        store: new MemoryIdempotencyStore(),
        cache: new MemoryIdempotencyCache(),
        ledger: new MemoryLedger(),
        label: 'memory store + memory cache',
        close: async () => {},
      };
  }
}
