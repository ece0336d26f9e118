/** The pause between a purge's batches, shared by every store (`purgeExpired({ pause })`). */
import { describe, expect, it } from 'vitest';
import { InvalidOptionError, MemoryIdempotencyStore } from '../src/index.js';
import { PurgePacer, purgePauseOption } from '../src/purge-pacing.js';

const busy = (ms: number) => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};

describe('PurgePacer', () => {
  it('starts the first batch at once, then pauses the fixed time before each later one', async () => {
    const pacer = new PurgePacer(40);
    const t0 = performance.now();
    await pacer.next();
    expect(performance.now() - t0).toBeLessThan(20);
    await pacer.next();
    await pacer.next();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(78);
  });

  it("'auto' pauses as long as the batch before took", async () => {
    const pacer = new PurgePacer('auto');
    await pacer.next();
    busy(60); // a batch of 60 ms
    const before = performance.now();
    await pacer.next();
    expect(performance.now() - before).toBeGreaterThanOrEqual(55);
    const quick = performance.now();
    await pacer.next(); // a batch of next to nothing: next to no pause
    expect(performance.now() - quick).toBeLessThan(30);
  });

  it('refuses a pause that is not whole ms from 0 to 60 000 or auto, naming the option', () => {
    for (const bad of [-1, 1.5, 60_001, 'fast', null]) {
      expect(() => purgePauseOption('pause', bad)).toThrow(InvalidOptionError);
      expect(() => purgePauseOption('pause', bad)).toThrow(/pause.*'auto' or an integer of milliseconds/);
    }
    expect(purgePauseOption('pause', 0)).toBe(0);
    expect(purgePauseOption('pause', 'auto')).toBe('auto');
  });
});

describe('the memory store', () => {
  it('pauses between its purge batches too, and refuses a bad pause', async () => {
    let now = 0;
    const clock = { now: () => now, setTimeout: () => 0, clearTimeout: () => {} };
    const store = new MemoryIdempotencyStore({ clock });
    for (let i = 0; i < 5; i++) {
      const token = { scope: 's', key: `K${i}` };
      await store.claim({ token, owner: 'o', leaseMs: 1000 });
      await store.complete({ token, owner: 'o', ttlMs: 10 });
    }
    now = 1000;
    const t0 = performance.now();
    await expect(store.purgeExpired({ batchSize: 2, pause: 30 })).resolves.toBe(5);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(55); // three batches, two pauses
    await expect(store.purgeExpired({ pause: -5 })).rejects.toThrow(/pause/);
  });
});
