/** Throughput and latency of an async operation at a given concurrency, for a given time. */

export interface Measurement {
  readonly ops: number;
  readonly opsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

export interface MeasureOptions {
  readonly concurrency: number;
  readonly durationMs: number;
  /** Run (and discard) this long first: JIT, pools, caches. */
  readonly warmupMs: number;
}

/** Hands out distinct sequence numbers across every run of one scenario, so first-time ops stay first-time. */
export class Sequence {
  private n = 0;
  next(): number {
    return this.n++;
  }
}

async function loop(
  op: (i: number) => Promise<void>,
  seq: Sequence,
  concurrency: number,
  ms: number,
  latencies?: number[],
) {
  const deadline = performance.now() + ms;
  let ops = 0;
  const worker = async () => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      await op(seq.next());
      latencies?.push(performance.now() - t0);
      ops++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { ops, elapsed: performance.now() - t0 };
}

export async function measure(
  op: (i: number) => Promise<void>,
  seq: Sequence,
  options: MeasureOptions,
): Promise<Measurement> {
  await loop(op, seq, options.concurrency, options.warmupMs);
  const latencies: number[] = [];
  const { ops, elapsed } = await loop(op, seq, options.concurrency, options.durationMs, latencies);
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return { ops, opsPerSec: (ops / elapsed) * 1000, p50Ms: at(0.5), p99Ms: at(0.99) };
}

/** What {@link compare} answers: each side over all its rounds, and the ratio of each round. */
export interface Comparison {
  readonly ours: Measurement;
  readonly baseline: Measurement;
  /** ours ÷ baseline throughput, one per round: the spread says how much a noisy machine moved it. */
  readonly ratios: readonly number[];
}

/**
 * Interleaves the two sides round by round (baseline–ours, then ours–baseline, and so on), so that drift
 * (other load, GC, disk, a warming JIT) hits both alike; both are warmed up once, before the first round.
 * Each round yields one ratio; report their median, with their spread.
 */
export async function compare(
  ours: (i: number) => Promise<void>,
  baseline: (i: number) => Promise<void>,
  options: MeasureOptions & {
    rounds: number;
    /** Called before each side's rounds and with `'done'` after the last (process-wide switches). */
    enter?: (side: 'ours' | 'baseline' | 'done') => void;
  },
): Promise<Comparison> {
  const seqOurs = new Sequence();
  const seqBase = new Sequence();
  const a: Measurement[] = [];
  const b: Measurement[] = [];
  const per = (round: number) => ({
    ...options,
    durationMs: options.durationMs / options.rounds,
    warmupMs: round === 0 ? options.warmupMs : 0,
  });
  const run = async (side: 'ours' | 'baseline', round: number) => {
    options.enter?.(side);
    if (side === 'ours') a.push(await measure(ours, seqOurs, per(round)));
    else b.push(await measure(baseline, seqBase, per(round)));
  };
  for (let r = 0; r < options.rounds; r++) {
    const order = r % 2 === 0 ? (['baseline', 'ours'] as const) : (['ours', 'baseline'] as const);
    for (const side of order) await run(side, r);
  }
  options.enter?.('done');
  const ratios = a.map((m, r) => m.opsPerSec / (b[r] as Measurement).opsPerSec);
  return { ours: combine(a), baseline: combine(b), ratios };
}

/** The median of `values` (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function combine(ms: Measurement[]): Measurement {
  const ops = ms.reduce((s, m) => s + m.ops, 0);
  const weighted = (f: (m: Measurement) => number) =>
    ms.reduce((s, m) => s + f(m) * m.ops, 0) / Math.max(1, ops);
  return {
    ops,
    opsPerSec: ms.reduce((s, m) => s + m.opsPerSec, 0) / ms.length,
    p50Ms: weighted((m) => m.p50Ms),
    p99Ms: Math.max(...ms.map((m) => m.p99Ms)),
  };
}
