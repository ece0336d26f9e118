/**
 * The payment scenario end to end on the in-memory broker with every fault on: 0 double charges,
 * 0 lost payments, balances exact. (The SQL and Redis variants live beside this file.)
 */
import { MemoryIdempotencyCache, MemoryIdempotencyStore } from '@idempotent-mq/core';
import { describe, expect, it } from 'vitest';
import { MemoryLedger } from '../../examples/payment/src/ledger.js';
import { DEFAULT_FAULTS, runPaymentScenario } from '../../examples/payment/src/scenario.js';

describe('payments end to end, every fault on', () => {
  it.each([1, 2, 3])('memory store + memory cache, seed %i: 0 double charges, 0 lost', async (seed) => {
    const report = await runPaymentScenario({
      payments: 1000,
      consumers: 4,
      accounts: 20,
      seed,
      faults: DEFAULT_FAULTS,
      storage: {
        store: new MemoryIdempotencyStore(),
        cache: new MemoryIdempotencyCache(),
        ledger: new MemoryLedger(),
        label: 'memory',
        close: async () => {},
      },
    });
    expect(report).toMatchObject({
      doubleCharges: 0,
      lostPayments: 0,
      deadLetters: 0,
      balancesExact: true,
      paymentsApplied: 1000,
    });
    // Every cause of duplicates really happened in the run.
    for (const cause of ['resend', 'lostAck', 'rebalance', 'crash', 'retry'] as const) {
      expect(report.deliveries[cause], cause).toBeGreaterThan(0);
    }
    expect(report.handlerCrashes).toBeGreaterThan(0);
    expect(report.duplicatesSkipped.cache + report.duplicatesSkipped.store).toBeGreaterThan(0);
  });
});
