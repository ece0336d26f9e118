/**
 * `pnpm bench [--quick]`: every scenario at concurrency 1 and 64, each beside its baseline measured in
 * the same run on the same connections. Prints a table, writes results/latest.json and latest.svg.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { MemoryIdempotencyCache, MemoryIdempotencyStore } from '@idempotent-mq/core';
import { type ChartRow, renderChart } from './chart.js';
import { compare, median } from './measure.js';
import { connect, scenarios } from './scenarios.js';
import { runVolume, volumeOptions } from './volume.js';

interface Result {
  readonly name: string;
  readonly concurrency: number;
  readonly baseline: string;
  readonly opsPerSec: number;
  readonly baselineOpsPerSec: number;
  /** The median of the rounds' ratios, with the lowest and highest round. */
  readonly ratio: number;
  readonly ratioMin: number;
  readonly ratioMax: number;
  readonly target: number | null;
  readonly met: boolean | null;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly series: string;
}

const results = fileURLToPath(new URL('../results/', import.meta.url));

async function versions(conn: Awaited<ReturnType<typeof connect>>) {
  const pg = (await conn.pg.raw('select version() as v')).rows[0].v as string;
  const [[my]] = (await conn.mysql.raw('select version() as v')) as [[{ v: string }]];
  const redis = /redis_version:(\S+)/.exec(await conn.redis.info('server'))?.[1];
  return { postgres: pg.split(' ').slice(0, 2).join(' '), mariadb: my.v, redis };
}

/**
 * RSS after a million distinct tokens through the memory adapters, read (after a GC) at each quarter: it
 * must level off once the store holds `maxRecords` and the cache `maxEntries`.
 */
async function memoryBound(tokens: number) {
  const store = new MemoryIdempotencyStore({ maxRecords: 100_000 });
  const cache = new MemoryIdempotencyCache({ maxEntries: 10_000 });
  const rssMb = () => {
    global.gc?.();
    return Math.round(process.memoryUsage().rss / 2 ** 20);
  };
  const before = rssMb();
  const checkpoints: { tokens: number; rssMb: number }[] = [];
  for (let i = 0; i < tokens; i++) {
    const token = { scope: 'v1:bench', key: `MEM-${i}` };
    await store.claim({ token, owner: `o${i}`, leaseMs: 60_000 });
    await store.complete({ token, owner: `o${i}`, ttlMs: 3_600_000 });
    await cache.set(token, {}, 3_600_000);
    if ((i + 1) % (tokens / 4) === 0) checkpoints.push({ tokens: i + 1, rssMb: rssMb() });
  }
  return {
    tokens,
    rssBeforeMb: before,
    rssAfterMb: checkpoints.at(-1)?.rssMb ?? before,
    checkpoints,
    storeSize: store.size,
    cacheSize: cache.size,
  };
}

interface Saved {
  readonly machine: { readonly cores: number; readonly node: string };
  readonly scenarios: readonly {
    readonly name: string;
    readonly opsPerSec: number;
    readonly baselineOpsPerSec: number;
    readonly series: string;
  }[];
}

/** The chart of a results file: each path beside its baseline (or the peer). */
async function draw(saved: Saved, name = 'latest'): Promise<void> {
  const chart: ChartRow[] = saved.scenarios.flatMap((s) => [
    { scenario: s.name, series: 'idempotent-mq', opsPerSec: s.opsPerSec },
    { scenario: s.name, series: s.series, opsPerSec: s.baselineOpsPerSec },
  ]);
  const title = `idempotent-mq vs baselines (${saved.machine.cores} cores, Node ${saved.machine.node})`;
  await writeFile(join(results, `${name}.svg`), await renderChart(chart, title));
}

/** `--redraw`: draws the chart again from results/latest.json, without measuring. */
async function redraw(): Promise<void> {
  const saved = JSON.parse(await readFile(join(results, 'latest.json'), 'utf8')) as Saved;
  await draw(saved);
  console.log(`drew ${join(results, 'latest.svg')} from latest.json`);
}

async function main() {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean' },
      only: { type: 'string' },
      redraw: { type: 'boolean' },
      // The volume benchmark (volume.ts), only when asked: it fills millions of rows.
      volume: { type: 'boolean' },
      'volume-rows': { type: 'string' },
      'volume-only': { type: 'string' },
      'volume-servers': { type: 'string' },
    },
  });
  if (values.redraw) return redraw();
  if (values.volume) return runVolume(volumeOptions(values));
  const quick = values.quick ?? false;
  // Rounds alternate the two sides; the ratio reported is their median, with the spread beside it.
  const timing = quick
    ? { durationMs: 400, warmupMs: 100, rounds: 4 }
    : { durationMs: 4000, warmupMs: 500, rounds: 8 };
  const dir = await mkdtemp(join(os.tmpdir(), 'imq-bench-'));
  const conn = await connect(join(dir, 'bench.sqlite'));
  const rows: Result[] = [];
  const started = Date.now();
  // First, while the process is fresh: memory is what it measures.
  const memory = await memoryBound(quick ? 100_000 : 1_000_000);
  try {
    const plan: { c: number; list: Awaited<ReturnType<typeof scenarios>> }[] = [];
    for (const c of [1, 64])
      plan.push({
        c,
        list: (await scenarios(conn, c)).filter((s) => !values.only || s.name.includes(values.only)),
      });
    const total = plan.reduce((n, p) => n + p.list.length, 0);
    let done = 0;
    for (const { list } of plan) {
      for (const s of list) {
        process.stderr.write(`[${++done}/${total}] ${s.name} @ ${s.concurrency} ... `);
        const per = s.opsPerCall ?? 1;
        const { ours, baseline, ratios } = await compare(s.ours, s.baseline, {
          concurrency: s.concurrency,
          enter: s.enter?.bind(s),
          ...timing,
        });
        const ratio = median(ratios);
        rows.push({
          name: s.name,
          concurrency: s.concurrency,
          baseline: s.baselineLabel,
          opsPerSec: ours.opsPerSec * per,
          baselineOpsPerSec: baseline.opsPerSec * per,
          ratio,
          ratioMin: Math.min(...ratios),
          ratioMax: Math.max(...ratios),
          target: s.target ?? null,
          met: s.target === undefined ? null : ratio >= s.target,
          p50Ms: ours.p50Ms,
          p99Ms: ours.p99Ms,
          series: s.series ?? 'raw baseline',
        });
        process.stderr.write(
          `${ratio.toFixed(2)}x (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})\n`,
        );
      }
    }
    const machine = {
      cpu: os.cpus()[0]?.model ?? 'unknown',
      cores: os.cpus().length,
      memoryGb: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      ...(await versions(conn)),
      quick,
      date: new Date().toISOString(),
      durationS: Math.round((Date.now() - started) / 1000),
    };
    await mkdir(results, { recursive: true });
    const out = {
      machine,
      scenarios: rows.map((r) => ({
        name: `${r.name} @${r.concurrency}`,
        opsPerSec: Math.round(r.opsPerSec),
        baselineOpsPerSec: Math.round(r.baselineOpsPerSec),
        ratio: Number(r.ratio.toFixed(3)),
        ratioSpread: [Number(r.ratioMin.toFixed(3)), Number(r.ratioMax.toFixed(3))],
        target: r.target,
        p50Ms: Number(r.p50Ms.toFixed(3)),
        p99Ms: Number(r.p99Ms.toFixed(3)),
        baseline: r.baseline,
        series: r.series,
        met: r.met,
      })),
      memory,
    };
    // A quick or partial run is a smoke check: it never replaces the full results the README shows.
    const name = quick ? 'quick' : values.only ? 'only' : 'latest';
    await writeFile(join(results, `${name}.json`), `${JSON.stringify(out, null, 2)}\n`);
    await draw(out, name);

    console.log(
      '\n| scenario | conc | ops/s | baseline ops/s | ratio (median of rounds) | rounds min–max | target | p50 ms | p99 ms | baseline |',
    );
    console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---|');
    for (const r of rows) {
      const target = r.target === null ? '—' : `≥ ${r.target}× ${r.met ? '✓' : '✗'}`;
      console.log(
        `| ${r.name} | ${r.concurrency} | ${Math.round(r.opsPerSec)} | ${Math.round(r.baselineOpsPerSec)} | ${r.ratio.toFixed(2)}× | ${r.ratioMin.toFixed(2)}–${r.ratioMax.toFixed(2)} | ${target} | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} | ${r.baseline} |`,
      );
    }
    const steps = memory.checkpoints.map((p) => `${p.tokens / 1000}k: ${p.rssMb}`).join(', ');
    console.log(
      `\nmemory adapters: ${memory.tokens} distinct tokens → RSS ${memory.rssBeforeMb} MB before; ${steps} MB (store ${memory.storeSize} records, cache ${memory.cacheSize} entries)`,
    );
    console.log(
      `machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGb} GB, Node ${machine.node}; ${machine.postgres}, MariaDB ${machine.mariadb}, Redis ${machine.redis}`,
    );
    console.log(`wrote ${join(results, `${name}.json`)} and ${name}.svg in ${machine.durationS} s`);
  } finally {
    await conn.close();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
