/**
 * The load on the machine while a volume part ran, saved beside its figures: another helper's bench or a
 * build on the same 2 cores moves every number, so each entry says what else was running.
 */
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';

/** What the machine did during one part: the load average, how busy the CPUs were, and who kept them so. */
export interface LoadReport {
  readonly cores: number;
  /** The 1-minute load average, sampled every `sampleEveryS` seconds. */
  readonly loadAvg1: { readonly min: number; readonly median: number; readonly max: number };
  readonly sampleEveryS: number;
  /** Share of all cores' time spent busy (user + system + …), from /proc/stat. */
  readonly cpuBusyPct: number;
  /** CPU seconds of this benchmark's own process. */
  readonly thisProcessCpuS: number;
  /**
   * The other processes that used the most CPU meanwhile, as last read (every `sampleEveryS`), so one
   * that ended during the part counts up to its last reading. The database servers count here: they
   * serve this run and anyone else's. Command lines cut to 100 characters.
   */
  readonly busiestOthers: readonly {
    readonly pid: number;
    readonly cpuS: number;
    readonly command: string;
  }[];
}

const TICK = 100; // USER_HZ on Linux

function procCpu(): Map<number, { ticks: number; command: string }> {
  const out = new Map<number, { ticks: number; command: string }>();
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // The command name may hold spaces and parentheses: the fields start after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime
      const command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
      out.set(pid, { ticks, command: command.slice(0, 100) || (stat.split(' ')[1] ?? '?') });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

function cpuTotals(): { busy: number; all: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const all = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: all - idle, all };
}

/** Starts watching; the returned function stops and reports. */
export function watchLoad(sampleEveryS = 5): () => LoadReport {
  const loads: number[] = [os.loadavg()[0] ?? 0];
  const before = procCpu();
  // The last reading of every process seen, so that one which ended before the part did still counts.
  const after = new Map(before);
  const sample = () => {
    loads.push(os.loadavg()[0] ?? 0);
    for (const [pid, p] of procCpu()) after.set(pid, p);
  };
  const timer = setInterval(sample, sampleEveryS * 1000);
  timer.unref();
  const cpuBefore = cpuTotals();
  return () => {
    clearInterval(timer);
    sample();
    const cpuAfter = cpuTotals();
    const used = [...after].map(([pid, a]) => ({
      pid,
      cpuS: (a.ticks - (before.get(pid)?.ticks ?? 0)) / TICK,
      command: a.command,
    }));
    const sorted = [...loads].sort((a, b) => a - b);
    const round = (n: number) => Number(n.toFixed(2));
    return {
      cores: os.cpus().length,
      loadAvg1: {
        min: round(sorted[0] ?? 0),
        median: round(sorted[Math.floor(sorted.length / 2)] ?? 0),
        max: round(sorted.at(-1) ?? 0),
      },
      sampleEveryS,
      cpuBusyPct: Math.round(
        (100 * (cpuAfter.busy - cpuBefore.busy)) / Math.max(1, cpuAfter.all - cpuBefore.all),
      ),
      thisProcessCpuS: round(used.find((u) => u.pid === process.pid)?.cpuS ?? 0),
      busiestOthers: used
        .filter((u) => u.pid !== process.pid && u.cpuS >= 0.1)
        .sort((a, b) => b.cpuS - a.cpuS)
        .slice(0, 6)
        .map((u) => ({ ...u, cpuS: round(u.cpuS) })),
    };
  };
}
