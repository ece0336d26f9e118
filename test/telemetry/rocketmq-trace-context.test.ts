/**
 * The trace context over RocketMQ, through core's two hooks and nothing of OpenTelemetry: the
 * publisher writes what the installed injector gives into the message's properties; the real client
 * carries it through the gRPC test broker; the engine hands the received message (properties and
 * subscription) to the bound instrumentation, and reports each store and cache call and the outcome to
 * its probe. (The OpenTelemetry side of both hooks is tested in packages/opentelemetry.)
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type DeliveryInfo,
  IDEMPOTENCY_INSTRUMENTATION,
  type IdempotencyInstrumentation,
  IdempotencyModule,
  type IdempotencyOutcome,
  Idempotent,
  ListenerRegistry,
  MESSAGE_TRANSPORT,
  type StepTiming,
  setTraceContextInjector,
  type TransportMessage,
} from '@idempotent-mq/core/adapter';
import { RocketMQListener, RocketMQPublisher, RocketMQTransport } from '@idempotent-mq/rocketmq';
import { RocketMQTestBroker } from '@idempotent-mq/rocketmq-testing';
import { Container, injectable } from 'inversify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const quiet = { info() {}, warn() {}, error() {}, debug() {} };

const previousHome = process.env.HOME;
const home = mkdtempSync(join(tmpdir(), 'imq-telemetry-'));
process.env.HOME = home;

let broker: RocketMQTestBroker;
let publisher: RocketMQPublisher;

beforeAll(async () => {
  broker = await RocketMQTestBroker.start();
  publisher = new RocketMQPublisher({ endpoints: broker.endpoints, topics: ['traced'], logger: quiet });
  await publisher.start();
});
afterAll(async () => {
  setTraceContextInjector(undefined);
  await publisher?.stop();
  await broker?.close();
  process.env.HOME = previousHome;
  rmSync(home, { recursive: true, force: true });
});

const propertiesOf = (messageId: string) =>
  broker.messages('traced').find((m) => m.messageId === messageId)?.properties;

describe('RocketMQPublisher and the trace context injector', () => {
  it('sends no trace context while no injector is installed', async () => {
    setTraceContextInjector(undefined);
    const { messageId } = await publisher.send({
      topic: 'traced',
      keys: 'T-0',
      body: {},
      properties: { a: '1' },
    });
    expect(propertiesOf(messageId)).toEqual({ a: '1' });
  });

  it("writes the injector's traceparent beside the caller's properties, and keeps a caller's own", async () => {
    setTraceContextInjector((properties) => {
      properties.traceparent = TRACEPARENT;
      properties.tracestate = 'vendor=abc';
    });
    const sent = await publisher.send({ topic: 'traced', keys: 'T-1', body: {}, properties: { a: '1' } });
    expect(propertiesOf(sent.messageId)).toEqual({
      a: '1',
      traceparent: TRACEPARENT,
      tracestate: 'vendor=abc',
    });
    const bare = await publisher.send({ topic: 'traced', keys: 'T-2', body: {} });
    expect(propertiesOf(bare.messageId)).toEqual({ traceparent: TRACEPARENT, tracestate: 'vendor=abc' });
    const own = `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01`;
    const kept = await publisher.send({
      topic: 'traced',
      keys: 'T-3',
      body: {},
      properties: { traceparent: own },
    });
    expect(propertiesOf(kept.messageId)).toEqual({ traceparent: own });
  });
});

/** What a recording instrumentation saw of one message. */
interface Seen {
  readonly properties: Readonly<Record<string, string>>;
  readonly delivery: DeliveryInfo | undefined;
  readonly steps: string[];
  /** The handler ran inside the probe's `run`, however many awaits later. */
  handledInside: boolean;
  outcome?: IdempotencyOutcome;
}

/** The probe's context, as a tracing library would keep it. */
const current = new AsyncLocalStorage<Seen>();

@injectable()
@RocketMQListener({ topic: 'traced', consumerGroup: 'tracing', concurrency: 2 })
class TracedConsumer {
  @Idempotent({ key: (m: TransportMessage) => m.keys })
  async onMessage(_m: TransportMessage) {
    await new Promise((r) => setTimeout(r, 1));
    const entry = current.getStore();
    if (entry) entry.handledInside = true;
  }
}

describe('a RocketMQ delivery, as the engine shows it to the instrumentation', () => {
  it('hands over the received properties (the traceparent) and the subscription, then the steps and the outcome', {
    timeout: 30_000,
  }, async () => {
    const seen: Seen[] = [];
    const recording: IdempotencyInstrumentation = {
      startMessage(message, _handler, delivery) {
        const entry: Seen = {
          properties: (message as TransportMessage).properties,
          delivery,
          steps: [],
          handledInside: false,
        };
        seen.push(entry);
        return {
          run: (path) => current.run(entry, path),
          step(timing: StepTiming) {
            entry.steps.push(`${timing.target} ${timing.operation}`);
          },
          end(outcome) {
            entry.outcome = outcome;
          },
        };
      },
    };
    const container = new Container();
    container.load(new IdempotencyModule());
    container.bind(IDEMPOTENCY_INSTRUMENTATION).toConstantValue(recording);
    container
      .bind(MESSAGE_TRANSPORT)
      .toConstantValue(
        new RocketMQTransport({ endpoints: broker.endpoints, logger: quiet, awaitDurationMs: 300 }),
      );
    container.bind(TracedConsumer).toSelf().inSingletonScope();
    setTraceContextInjector((properties) => {
      properties.traceparent = TRACEPARENT;
    });
    const registry = new ListenerRegistry(container);
    await registry.start();
    await publisher.send({ topic: 'traced', keys: 'T-10', body: { n: 1 } });
    const deadline = Date.now() + 20_000;
    const done = () => seen.some((s) => s.outcome?.token?.key === 'T-10');
    while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await registry.stop();

    const mine = seen.find((s) => s.outcome?.token?.key === 'T-10');
    expect(mine?.properties.traceparent).toBe(TRACEPARENT);
    expect(mine?.delivery?.subscription).toEqual({
      topic: 'traced',
      consumerGroup: 'tracing',
      broker: 'RocketMQ',
    });
    expect(mine?.delivery?.attempt).toBe(1);
    expect(mine?.steps).toEqual([
      'cache getMany',
      'store begin',
      'store claim',
      'store complete',
      'store commit',
      'cache set',
    ]);
    expect(mine?.handledInside).toBe(true);
    expect(mine?.outcome).toMatchObject({ kind: 'processed', fence: 1 });
  });
});
