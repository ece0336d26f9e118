/** `stats` and `purge --expired` against every real store. */
import type { TokenRef } from '@idempotent-mq/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Backend,
  cli,
  openBackend,
  removeScratch,
  STORE_KINDS,
  sleep,
  uniqueScope,
} from './support/cli.js';

afterAll(removeScratch);

interface StatsDoc {
  total: number;
  byStatus: { inProgress: number; completed: number };
  lapsedClaims: number;
  expired: number;
  expiringSoon: number;
  expiringWithinMs: number;
  oldest: { key: string } | null;
  oldestInProgress: { key: string } | null;
}

for (const kind of STORE_KINDS) {
  describe(`stats and purge on ${kind}`, () => {
    let b: Backend;
    beforeAll(async () => {
      b = await openBackend(kind);
    });
    afterAll(async () => {
      await b.close();
    });

    it('stats counts a scope by status, lapsed, expired and expiring soon; purge --expired deletes the expired, in batches', async () => {
      const scope = uniqueScope();
      const token = (key: string): TokenRef => ({ scope, key });
      await b.seed(token('OLDEST'), { ttlMs: 3_600_000 });
      await sleep(5);
      await b.seed(token('LAPSED'), { leaseMs: 300 });
      await sleep(5);
      await b.seed(token('EXPIRED-1'), { ttlMs: 300 });
      await b.seed(token('EXPIRED-2'), { ttlMs: 300 });
      await b.seed(token('EXPIRED-3'), { ttlMs: 300 });
      await b.seed(token('KEPT'), { ttlMs: 30 * 86_400_000 });
      await sleep(400);
      await b.seed(token('LIVE'), { leaseMs: 60_000 });

      const stats = await cli(['stats', '--scope', scope, '--json'], { env: b.env });
      expect(stats.code).toBe(0);
      expect(stats.json<StatsDoc>()).toMatchObject({
        command: 'stats',
        scope,
        total: 7,
        byStatus: { inProgress: 2, completed: 5 },
        lapsedClaims: 1,
        expired: 3,
        expiringWithinMs: 86_400_000,
        expiringSoon: 1,
        oldest: { key: 'OLDEST', status: 'completed' },
        oldestInProgress: { key: 'LAPSED', state: 'lapsed' },
      });
      const wide = await cli(['stats', '--scope', scope, '--within', '60d', '--json'], { env: b.env });
      expect(wide.json<StatsDoc>()).toMatchObject({ expiringSoon: 2, expiringWithinMs: 60 * 86_400_000 });
      const text = await cli(['stats', '--scope', scope], { env: b.env });
      expect(text.stdout).toMatch(/in progress +2 \(1 lapsed/);
      expect(text.stdout).toMatch(/completed +5 \(3 past retention/);

      const dry = await cli(['purge', '--expired', '--dry-run', '--json'], { env: b.env });
      expect(dry.code).toBe(0);
      expect(dry.json<{ expired: number; purged: number }>().expired).toBeGreaterThanOrEqual(3);
      expect(
        (await cli(['stats', '--scope', scope, '--json'], { env: b.env })).json<StatsDoc>().expired,
      ).toBe(3);

      const purge = await cli(['purge', '--expired', '--batch-size', '2', '--pause', '60', '--json'], {
        env: b.env,
      });
      expect(purge.code).toBe(0);
      expect(purge.json()).toMatchObject({ command: 'purge', dryRun: false, batchSize: 2, pause: 60 });
      expect(purge.json<{ purged: number }>().purged).toBeGreaterThanOrEqual(3);
      // At least three expired records in batches of two: at least one pause between two batches.
      expect(purge.json<{ tookMs: number }>().tookMs).toBeGreaterThanOrEqual(55);
      expect(
        (await cli(['stats', '--scope', scope, '--json'], { env: b.env })).json<StatsDoc>(),
      ).toMatchObject({
        byStatus: { inProgress: 2, completed: 2 },
        expired: 0,
        lapsedClaims: 1,
      });
      expect((await cli(['purge', '--expired'], { env: b.env })).stdout).toMatch(
        /^purged 0 expired completed records/,
      );
    });

    it('stats of a scope without records counts nothing', async () => {
      const run = await cli(['stats', '--scope', uniqueScope(), '--json'], { env: b.env });
      expect(run.code).toBe(0);
      expect(run.json()).toMatchObject({ total: 0, oldest: null, oldestInProgress: null, expired: 0 });
    });
  });
}
