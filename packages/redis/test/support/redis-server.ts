/**
 * Starts throw-away redis-server processes on spare loopback ports (7300–7399) for tests that must kill,
 * restart or cluster a server; never touches the shared Redis on 6379. Every process is stopped by the
 * PID this helper spawned, and a process exit hook kills any left behind.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const HOST = '127.0.0.1';
const PORTS = { from: 7300, to: 7399 };
const spawned = new Set<ChildProcess>();

process.once('exit', () => {
  for (const child of spawned) if (child.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
});

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** True when nothing listens on (and we may bind) `port` on the loopback address. */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, HOST, () => server.close(() => resolve(true)));
  });
}

/** Spare ports from 7300–7399 in random order, so parallel test files rarely race for one. */
export async function sparePorts(
  count: number,
  alsoFree: (port: number) => number[] = () => [],
): Promise<number[]> {
  const candidates = Array.from({ length: PORTS.to - PORTS.from + 1 }, (_, i) => PORTS.from + i).sort(
    () => Math.random() - 0.5,
  );
  const chosen: number[] = [];
  for (const port of candidates) {
    if (chosen.length === count) break;
    const all = [port, ...alsoFree(port)];
    if ((await Promise.all(all.map(portIsFree))).every(Boolean)) chosen.push(port);
  }
  if (chosen.length < count) throw new Error(`no ${count} spare loopback ports in 7300–7399`);
  return chosen;
}

/** Sends one inline command over a raw socket; the reply's first line, or undefined if nobody answers. */
export function ask(port: number, command: string, timeoutMs = 500): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: HOST, port });
    let reply = '';
    const done = (value: string | undefined) => {
      socket.destroy();
      resolve(value);
    };
    socket.setTimeout(timeoutMs, () => done(undefined));
    socket.once('error', () => done(undefined));
    socket.once('connect', () => socket.write(`${command}\r\n`));
    socket.on('data', (chunk) => {
      reply += chunk.toString('utf8');
      if (reply.startsWith('$')) {
        // A bulk string: wait for the whole body.
        const [head, ...rest] = reply.split('\r\n');
        const length = Number(head?.slice(1));
        const body = rest.join('\r\n');
        if (Buffer.byteLength(body) >= length) done(body.slice(0, length));
      } else if (reply.includes('\r\n')) {
        done(reply.split('\r\n')[0]);
      }
    });
  });
}

export interface RedisServerOptions {
  /** `--appendonly yes --appendfsync always`: every acknowledged write is on disk. @defaultValue false */
  readonly aof?: boolean;
  /** `--cluster-enabled yes`, with its nodes file in the server's directory. @defaultValue false */
  readonly cluster?: boolean;
}

export class RedisServer {
  private child: ChildProcess | undefined;

  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly options: RedisServerOptions,
  ) {}

  /** Starts a server on a spare port and waits until it answers PING. */
  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      const [port] = await sparePorts(1, (p) => (options.cluster ? [p + 10_000] : []));
      const server = new RedisServer(port as number, mkdtempSync(join(tmpdir(), 'imq-redis-')), options);
      try {
        await server.spawn();
        return server;
      } catch (error) {
        // Another test file took the port between our check and the bind: try another.
        lastError = error;
        await server.stop();
      }
    }
    throw lastError;
  }

  get url(): string {
    return `redis://${HOST}:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Kills the server by PID (SIGKILL: a crash, nothing flushed that was not already) and waits for it. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    if (child.pid) process.kill(child.pid, signal);
    await exited;
    spawned.delete(child);
  }

  /** Starts the server again on the same port and directory (so an AOF is replayed). */
  async restart(): Promise<void> {
    await this.kill();
    for (let attempt = 0; ; attempt++) {
      try {
        await this.spawn();
        return;
      } catch (error) {
        if (attempt >= 20) throw error;
        await sleep(100);
      }
    }
  }

  /** Kills the server and removes its directory. */
  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async spawn(): Promise<void> {
    const args = [
      '--port',
      String(this.port),
      '--bind',
      HOST,
      '--daemonize',
      'no',
      '--dir',
      this.dir,
      '--save',
      '',
      '--logfile',
      join(this.dir, 'redis.log'),
      '--appendonly',
      this.options.aof ? 'yes' : 'no',
    ];
    if (this.options.aof) args.push('--appendfsync', 'always');
    if (this.options.cluster) {
      args.push(
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        join(this.dir, `nodes-${this.port}.conf`),
      );
    }
    const child = spawn('redis-server', args, { stdio: 'ignore' });
    spawned.add(child);
    this.child = child;
    const started = Date.now();
    while (Date.now() - started < 5000) {
      if (child.exitCode !== null) break;
      if ((await ask(this.port, 'PING', 200)) === '+PONG') return;
      await sleep(25);
    }
    await this.kill();
    throw new Error(`redis-server on port ${this.port} did not start (see ${this.dir}/redis.log)`);
  }
}
