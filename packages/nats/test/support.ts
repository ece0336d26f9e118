/**
 * What the NATS tests share: the server (NATS_URL, 127.0.0.1:4222 by default), unique names per test,
 * the dead letters of a group as JetStream keeps them, clean-up, and a private nats-server of our own
 * for the restart tests.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { derivedStreamName, KEYS_HEADER, type NatsLogger } from '@idempotent-mq/nats';
import { type JetStreamManager, jetstreamManager, type StoredMsg } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';

export const NATS_URL = process.env.NATS_URL ?? '127.0.0.1:4222';

/** Names no other test uses: a topic, a group, the dead-letter prefix and stream. */
export function uniqueNames(label = 't') {
  const id = randomUUID().slice(0, 8);
  return {
    id,
    topic: `imqtest.${label}.${id}`,
    group: `imqtest-${label}-${id}`,
    deadLetterSubjectPrefix: `imqtest.dlq.${id}`,
    deadLetterStream: `IMQTEST_DLQ_${id}`,
  };
}

/** An admin connection for set-up and clean-up. */
export async function admin(servers = NATS_URL): Promise<{ nc: NatsConnection; jsm: JetStreamManager }> {
  const nc = await connect({ servers, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  return { nc, jsm: await jetstreamManager(nc) };
}

/** Creates the stream the transport would create for `topic`, if no stream captures it yet. */
export async function ensureTopicStream(jsm: JetStreamManager, topic: string): Promise<string> {
  const found = await jsm.streams.find(topic).catch(() => undefined);
  if (found) return found;
  const name = derivedStreamName(topic);
  await jsm.streams.add({ name, subjects: [topic] }).catch(async (error: unknown) => {
    if (!(await jsm.streams.info(name).catch(() => undefined))) throw error;
  });
  return name;
}

/** Deletes the streams (and so their consumers) that capture these topics, and the named ones. */
export async function deleteStreams(
  jsm: JetStreamManager,
  topics: Iterable<string>,
  names: Iterable<string> = [],
): Promise<void> {
  const doomed = new Set(names);
  for (const topic of topics) {
    const found = await jsm.streams.find(topic).catch(() => undefined);
    if (found) doomed.add(found);
  }
  for (const name of doomed) await jsm.streams.delete(name).catch(() => undefined);
}

/** Every message of `stream` on `subject`, oldest first ([] if the stream does not exist). */
export async function storedMessages(
  jsm: JetStreamManager,
  stream: string,
  subject: string,
): Promise<StoredMsg[]> {
  const info = await jsm.streams.info(stream).catch(() => undefined);
  if (!info || info.state.messages === 0) return [];
  const found: StoredMsg[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
    if (m && m.subject === subject) found.push(m);
  }
  return found;
}

/** The business keys of the dead letters of `group`. */
export async function deadLetterKeys(
  jsm: JetStreamManager,
  names: { deadLetterStream: string; deadLetterSubjectPrefix: string },
  group: string,
): Promise<string[][]> {
  const messages = await storedMessages(
    jsm,
    names.deadLetterStream,
    `${names.deadLetterSubjectPrefix}.${group}`,
  );
  return messages.map((m) => JSON.parse(m.header.get(KEYS_HEADER) || '[]') as string[]);
}

/** A logger that keeps what it is told (and prints nothing). */
export class RecordingLogger implements NatsLogger {
  readonly lines: { level: string; text: string }[] = [];
  info(...args: unknown[]): void {
    this.lines.push({ level: 'info', text: args.map(String).join(' ') });
  }
  warn(...args: unknown[]): void {
    this.lines.push({ level: 'warn', text: args.map(String).join(' ') });
  }
  error(...args: unknown[]): void {
    this.lines.push({ level: 'error', text: args.map(String).join(' ') });
  }
  has(level: string, pattern: RegExp): boolean {
    return this.lines.some((l) => l.level === level && pattern.test(l.text));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function until(
  done: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`${what} (after ${timeoutMs} ms)`);
    await sleep(20);
  }
}

/**
 * A nats-server of the test's own, on a free loopback port with its own storage directory: stopped and
 * started again by its PID, its streams kept on disk across restarts.
 */
export class PrivateNatsServer {
  #process: ChildProcess | undefined;
  readonly storeDir = mkdtempSync(join(tmpdir(), 'imq-nats-'));

  private constructor(readonly port: number) {}

  static async start(): Promise<PrivateNatsServer> {
    const server = new PrivateNatsServer(await freePort());
    await server.restart();
    return server;
  }

  get url(): string {
    return `127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.#process?.pid;
  }

  /** Starts the server (again) and resolves once it accepts connections. */
  async restart(): Promise<void> {
    if (this.#process) throw new Error('the private nats-server is running');
    const child = spawn(
      'nats-server',
      ['-a', '127.0.0.1', '-p', String(this.port), '-js', '-sd', this.storeDir],
      { stdio: 'ignore' },
    );
    this.#process = child;
    child.once('exit', () => {
      if (this.#process === child) this.#process = undefined;
    });
    await waitForPort(this.port, 10_000);
  }

  /** Stops it by its PID (SIGTERM: a clean shutdown that writes its stores) and waits for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.#process;
    if (!child?.pid) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    process.kill(child.pid, signal);
    await exited;
    this.#process = undefined;
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.storeDir, { recursive: true, force: true });
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = new Socket();
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
      socket.connect(port, '127.0.0.1');
    });
    if (open) return;
    await sleep(50);
  }
  throw new Error(`nats-server did not open port ${port} within ${timeoutMs} ms`);
}
