/**
 * The chaos test's child processes, run from the build: the broker (one, outliving every consumer) and
 * the consumers (killed and frozen at random). Each is a `node` process whose stdout is read line by
 * line; every process ever started is remembered so that `endAll()` can kill it by its pid, whatever
 * state the test is left in.
 */
import { type ChildProcessByStdio, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';

const BROKER_SCRIPT = fileURLToPath(new URL('./broker-child.mjs', import.meta.url));
const CONSUMER_SCRIPT = fileURLToPath(new URL('./consumer-child.mjs', import.meta.url));
const BUILT = fileURLToPath(new URL('../../../packages/rocketmq-testing/dist/index.js', import.meta.url));
const STDERR_TAIL = 4000;

/** What a consumer process runs; it receives this as JSON. */
export interface ConsumerConfig {
  readonly store: 'knex' | 'redis';
  readonly mode: 'lease' | 'transactional';
  readonly endpoints: string;
  readonly topic: string;
  readonly group: string;
  readonly pgUrl: string;
  readonly redisUrl: string;
  readonly ledgerTable: string;
  readonly tokenTable: string;
  readonly keyPrefix: string;
  readonly leaseMs: number;
  readonly concurrency: number;
  readonly maxAttempts: number;
  readonly inFlightDelayMs: number;
  /** The handler sleeps a random time in this range before it charges. */
  readonly handlerMs: readonly [number, number];
}

/** One line a consumer reported. */
export type ConsumerEvent =
  | { readonly type: 'ready' }
  | { readonly type: 'run'; readonly serial: string }
  | { readonly type: 'charged'; readonly serial: string }
  | { readonly type: 'already'; readonly serial: string }
  | { readonly type: 'outcome'; readonly kind: string; readonly serial: string }
  | { readonly type: 'dead'; readonly serial: string; readonly reason: string }
  | { readonly type: 'exit'; readonly code: number | null; readonly signal: NodeJS.Signals | null };

type Proc = ChildProcessByStdio<Writable, Readable, Readable>;
const started = new Set<Proc>();

function start(script: string, args: string[], home: string): Proc {
  if (!existsSync(BUILT)) throw new Error('build first: npx tsc -b tsconfig.build.json');
  // The RocketMQ client always writes a log under $HOME/logs/rocketmq: HOME is a temp folder.
  const proc = spawn(process.execPath, [script, ...args], {
    env: { ...process.env, HOME: home },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  started.add(proc);
  proc.once('exit', () => started.delete(proc));
  return proc;
}

function exited(proc: Proc): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => proc.once('exit', () => resolve()));
}

/** Kills (SIGKILL, by pid) every child still alive and waits for each to be gone. */
export async function endAll(): Promise<void> {
  const alive = [...started];
  for (const proc of alive) proc.kill('SIGKILL');
  await Promise.all(alive.map(exited));
}

function keepTail(proc: Proc): () => string {
  let tail = '';
  proc.stderr.on('data', (chunk: Buffer) => {
    tail = (tail + chunk.toString()).slice(-STDERR_TAIL);
  });
  return () => tail;
}

/** The broker process: its endpoints, and what it says about a group's progress. */
export class BrokerProcess {
  private nextId = 0;
  private readonly pending = new Map<number, (reply: { result?: unknown; error?: string }) => void>();

  private constructor(
    private readonly proc: Proc,
    readonly endpoints: string,
  ) {}

  static async start(home: string): Promise<BrokerProcess> {
    const proc = start(BROKER_SCRIPT, [], home);
    const stderr = keepTail(proc);
    const lines = createInterface({ input: proc.stdout });
    let broker: BrokerProcess | undefined;
    return new Promise<BrokerProcess>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the broker did not start: ${stderr()}`)), 15_000);
      proc.once('exit', (code, signal) => {
        const error = new Error(`the broker exited (${code ?? signal}): ${stderr()}`);
        reject(error);
        for (const answer of broker?.pending.values() ?? []) answer({ error: error.message });
      });
      // The first line is the endpoints; every later one answers a request.
      lines.on('line', (line) => {
        if (!broker) {
          clearTimeout(timer);
          broker = new BrokerProcess(proc, (JSON.parse(line) as { endpoints: string }).endpoints);
          resolve(broker);
          return;
        }
        const reply = JSON.parse(line) as { id: number; result?: unknown; error?: string };
        broker.pending.get(reply.id)?.(reply);
      });
    });
  }

  /** How many of the topic's messages the group has acked or dead-lettered, and the dead letters. */
  progress(group: string, topic: string): Promise<BrokerProgress> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => answer({ error: 'the broker did not answer within 5 s' }), 5000);
      const answer = (reply: { result?: unknown; error?: string }) => {
        clearTimeout(timer);
        this.pending.delete(id);
        if (reply.error === undefined) resolve(reply.result as BrokerProgress);
        else reject(new Error(reply.error));
      };
      this.pending.set(id, answer);
      this.proc.stdin.write(`${JSON.stringify({ id, cmd: 'progress', group, topic })}\n`);
    });
  }

  /** Ends stdin (the broker closes and exits by itself); kills it if it has not within a second. */
  async close(): Promise<void> {
    this.proc.stdin.end();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 1000);
    await exited(this.proc);
    clearTimeout(timer);
  }
}

export interface BrokerProgress {
  readonly messages: number;
  /** Messages acked or dead-lettered: nothing more will happen to them. */
  readonly settled: number;
  readonly deliveries: number;
  readonly deadLetters: readonly {
    readonly keys: readonly string[];
    readonly deliveryAttempt: number;
    readonly cause: string;
  }[];
}

/** A consumer process. `running`: subscribed and not frozen; the chaos picks its victims among these. */
export class ConsumerProcess {
  state: 'starting' | 'running' | 'frozen' | 'dead' = 'starting';
  readonly pid: number;
  readonly stderr: () => string;
  /** Resolves once the process is gone and every line it wrote has been read. */
  readonly exited: Promise<void>;
  private readonly proc: Proc;

  constructor(config: ConsumerConfig, home: string, onEvent: (pid: number, event: ConsumerEvent) => void) {
    this.proc = start(CONSUMER_SCRIPT, [JSON.stringify(config)], home);
    this.pid = this.proc.pid as number;
    this.stderr = keepTail(this.proc);
    // 'close', not 'exit': by then every line the process wrote has been read.
    this.exited = new Promise((resolve) =>
      this.proc.once('close', (code, signal) => {
        this.state = 'dead';
        onEvent(this.pid, { type: 'exit', code, signal });
        resolve();
      }),
    );
    createInterface({ input: this.proc.stdout }).on('line', (line) => {
      const [type, a = '', b = '', ...rest] = line.split(' ');
      if (type === 'ready') {
        if (this.state === 'starting') this.state = 'running';
        onEvent(this.pid, { type });
      } else if (type === 'run' || type === 'charged' || type === 'already')
        onEvent(this.pid, { type, serial: a });
      else if (type === 'outcome') onEvent(this.pid, { type, kind: a, serial: b });
      else if (type === 'dead') onEvent(this.pid, { type, serial: a, reason: [b, ...rest].join(' ') });
    });
  }

  /** SIGKILL: the process ends at once, mid-handler; its claims and invisible messages stay behind. */
  kill(): void {
    if (this.state === 'dead') return;
    this.state = 'dead';
    this.proc.kill('SIGKILL');
  }

  /** SIGSTOP: frozen with its sockets open (claims held, transactions open, leases no longer renewed). */
  freeze(): void {
    if (this.state !== 'running') return;
    this.state = 'frozen';
    this.proc.kill('SIGSTOP');
  }
}
