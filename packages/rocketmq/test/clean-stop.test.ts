/**
 * `stop()` is quiet. Regression: with no `logger`, rocketmq-client-nodejs 1.0.8 logs to its own egg-logger
 * file, closes that logger at the end of its shutdown, and then the producer logs once more ("Shutdown
 * the rocketmq producer successfully"): egg-logger printed `Error: …rocketmq_client_nodejs.log log stream
 * had been closed` with its stack to stderr on every `RocketMQPublisher.stop()`. egg-logger stays silent
 * when NODE_ENV is `test` (as vitest sets it), so the run below sets it as an application would.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RocketMQPublisher, RocketMQTransport } from '@idempotent-mq/rocketmq';
import { RocketMQTestBroker } from '@idempotent-mq/rocketmq-testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, recordingSpec, useTempHome } from './support.js';

const restoreHome = useTempHome();
let broker: RocketMQTestBroker;

beforeAll(async () => {
  broker = await RocketMQTestBroker.start();
});

afterAll(async () => {
  await broker?.close();
  restoreHome();
});

/** Everything written to the console or to the process's stdout and stderr while `run` runs. */
async function output(run: () => Promise<void>): Promise<string[]> {
  const written: string[] = [];
  const record =
    (stream: string) =>
    (...args: unknown[]) => {
      written.push(`${stream}: ${args.map((a) => (a instanceof Error ? a.stack : String(a))).join(' ')}`);
    };
  const saved = {
    error: console.error,
    warn: console.warn,
    log: console.log,
    info: console.info,
    stderr: process.stderr.write,
    stdout: process.stdout.write,
    nodeEnv: process.env.NODE_ENV,
  };
  console.error = record('console.error');
  console.warn = record('console.warn');
  console.log = record('console.log');
  console.info = record('console.info');
  const capture = (stream: string) =>
    ((chunk: unknown) => {
      record(stream)(chunk);
      return true;
    }) as typeof process.stderr.write;
  process.stderr.write = capture('stderr');
  process.stdout.write = capture('stdout');
  process.env.NODE_ENV = 'production';
  try {
    await run();
    // What a closed client could still log comes within a telemetry renewal (1 s) of its shutdown.
    await new Promise((resolve) => setTimeout(resolve, 1200));
  } finally {
    Object.assign(console, { error: saved.error, warn: saved.warn, log: saved.log, info: saved.info });
    process.stderr.write = saved.stderr;
    process.stdout.write = saved.stdout;
    if (saved.nodeEnv === undefined) delete process.env.NODE_ENV;
    else process.env.NODE_ENV = saved.nodeEnv;
  }
  return written;
}

describe('stop() without a logger of your own', () => {
  it('the publisher stops without a word on the console, and the client still logs its shutdown to its file', async () => {
    const written = await output(async () => {
      const publisher = new RocketMQPublisher({ endpoints: broker.endpoints, topics: ['quiet'] });
      await publisher.start();
      await publisher.send({ topic: 'quiet', keys: 'Q-1', body: { n: 1 } });
      await publisher.stop();
    });
    expect(written).toEqual([]);
    const log = readFileSync(
      join(process.env.HOME as string, 'logs/rocketmq/rocketmq_client_nodejs.log'),
      'utf8',
    );
    expect(log).toMatch(/Shutdown the rocketmq producer successfully/);
  });

  it('a transport and a publisher of one application stop quietly, one after the other', async () => {
    const written = await output(async () => {
      const publisher = new RocketMQPublisher({ endpoints: broker.endpoints, topics: ['quiet-app'] });
      const transport = new RocketMQTransport({ endpoints: broker.endpoints, awaitDurationMs: 300 });
      const spec = recordingSpec({ topic: 'quiet-app', consumerGroup: 'quiet-app' });
      await publisher.start();
      await transport.subscribe(spec);
      await publisher.send({ topic: 'quiet-app', keys: 'Q-2', body: { n: 2 } });
      await eventually('the message is handled', () => spec.received.length === 1);
      await transport.stop();
      await publisher.stop();
    });
    expect(written).toEqual([]);
  });
});
