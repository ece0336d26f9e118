/**
 * Child process of `lifecycle.test.ts`, run from the build: the test broker, a publisher and two
 * transports; sends, restarts the broker, replaces one transport, kills a third mid-handler (its
 * handler never returns), stops everything, closes the broker, and then does nothing: the process must
 * end by itself. Prints `done <ms>` once everything is closed.
 */

import { RocketMQTestBroker } from '../../../rocketmq-testing/dist/index.js';
import { RocketMQPublisher, RocketMQTransport } from '../../dist/index.js';
import { killTransport } from '../../dist/testing/index.js';

const TOPIC = 'lifecycle';
const GROUP = 'lifecycle-group';
const quiet = { info() {}, warn() {}, error() {}, debug() {} };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const received = new Set();

const broker = await RocketMQTestBroker.start();
const client = { endpoints: broker.endpoints, logger: quiet, requestTimeout: 1000, startupTimeoutMs: 5000 };
const publisher = new RocketMQPublisher({ ...client, topics: [TOPIC] });
await publisher.start();

const spec = {
  topic: TOPIC,
  consumerGroup: GROUP,
  concurrency: 4,
  maxAttempts: 5,
  listener: {},
  async handle(messages) {
    for (const m of messages) received.add(m.keys[0]);
    return messages.map(() => ({ action: 'ack' }));
  },
};
const transport = () =>
  new RocketMQTransport({
    ...client,
    awaitDurationMs: 300,
    invisibleDurationMs: 2000,
    receiveBackoff: { initialMs: 100, maxMs: 500 },
  });

const send = async (key) => {
  for (let tries = 0; ; tries++) {
    try {
      return await publisher.send({ topic: TOPIC, keys: [key], body: { key } });
    } catch (error) {
      if (tries >= 50) throw error;
      await sleep(100);
    }
  }
};
const waitFor = async (count) => {
  const deadline = Date.now() + 15_000;
  while (received.size < count) {
    if (Date.now() > deadline) throw new Error(`only ${received.size} of ${count} messages received`);
    await sleep(20);
  }
};

const first = transport();
let second = transport();
await first.subscribe(spec);
await second.subscribe(spec);
for (let i = 0; i < 5; i++) await send(`a${i}`);
await waitFor(5);

await broker.restart(300);
for (let i = 0; i < 5; i++) await send(`b${i}`);
await waitFor(10);

await second.stop();
second = transport();
await second.subscribe(spec);
for (let i = 0; i < 5; i++) await send(`c${i}`);
await waitFor(15);

// A consumer of its own group, killed while its first handler call hangs and its second batch waits
// in place (batches of 4, so that there is a second call).
let calls = 0;
const doomed = new RocketMQTransport({
  ...client,
  awaitDurationMs: 300,
  invisibleDurationMs: 2000,
  batchSize: 4,
});
await doomed.subscribe({
  ...spec,
  consumerGroup: `${GROUP}-doomed`,
  concurrency: 8,
  handle: (messages) =>
    calls++ === 0
      ? new Promise(() => undefined)
      : Promise.resolve(
          messages.map(() => ({ action: 'retry', delayMs: 60_000, countsAsAttempt: false, reason: 'wait' })),
        ),
});
const deadline = Date.now() + 15_000;
while (calls < 2 && Date.now() < deadline) await sleep(20);
if (calls < 2) throw new Error('the doomed consumer never got its messages');
await sleep(50); // the second batch is waiting in place now
await killTransport(doomed);

const started = Date.now();
await Promise.all([first.stop(), second.stop()]);
await publisher.stop();
await broker.close();
console.log(`done ${Date.now() - started}`);
