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

/** Alternates the two sides in rounds, so that drift (other load, GC, disk) hits both alike; sums the rounds. */
export async function compare(
  ours: (i: number) => Promise<void>,
  baseline: (i: number) => Promise<void>,
  options: MeasureOptions & {
    rounds: number;
    /** Called before each side's rounds and with `'done'` after the last (process-wide switches). */
    enter?: (side: 'ours' | 'baseline' | 'done') => void;
  },
): Promise<{ ours: Measurement; baseline: Measurement }> {
  const seqOurs = new Sequence();
  const seqBase = new Sequence();
  const a: Measurement[] = [];
  const b: Measurement[] = [];
  const per = { ...options, durationMs: options.durationMs / options.rounds };
  for (let r = 0; r < options.rounds; r++) {
    options.enter?.('baseline');
    b.push(await measure(baseline, seqBase, per));
    options.enter?.('ours');
    a.push(await measure(ours, seqOurs, per));
  }
  options.enter?.('done');
  return { ours: combine(a), baseline: combine(b) };
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
