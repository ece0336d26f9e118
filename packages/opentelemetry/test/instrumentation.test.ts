import 'reflect-metadata';
import {
  deliveryInfo,
  getHandlerMethod,
  type HandlerMethod,
  IDEMPOTENCY_ENGINE,
  IDEMPOTENCY_INSTRUMENTATION,
  IDEMPOTENCY_LOGGER,
  type IdempotencyContext,
  type IdempotencyEngine,
  type IdempotencyLogger,
  IdempotencyModule,
  Idempotent,
  InvalidOptionError,
  injectTraceContext,
  ListenerRegistry,
  MESSAGE_TRANSPORT,
  MemoryIdempotencyCache,
  MemoryIdempotencyStore,
  MessageListener,
  makeIdempotent,
  NoIdempotencyCache,
  type TransportMessage,
} from '@idempotent-mq/core/adapter';
import {
  ATTR,
  installTraceContextInjector,
  METRIC,
  OpenTelemetryInstrumentation,
  type OpenTelemetryInstrumentationOptions,
} from '@idempotent-mq/opentelemetry';
import { InMemoryBroker } from '@idempotent-mq/testing';
import { context, metrics, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { type ReadableSpan, type Sampler, SamplingDecision } from '@opentelemetry/sdk-trace-base';
import { Container, injectable } from 'inversify';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  countsBy,
  type InMemorySdk,
  inMemorySdk,
  pointWith,
  spanTree,
  useContextManager,
} from './support.js';

type Payment = TransportMessage<{ amount: number }>;

/** Set by a test to make the handler fail. */
let failWith: unknown;

@injectable()
@MessageListener({ topic: 'payments', consumerGroup: 'billing' })
class Billing {
  @Idempotent({ key: (m: Payment) => m.keys })
  async onMessage(m: Payment, _ctx: IdempotencyContext) {
    // The handler's own span: a child of the message's span, through the active context. The pauses
    // keep it clear of the store calls' times (the SDK times a span of its own to the millisecond).
    await pause(3);
    const span = trace.getTracer('billing').startSpan('charge');
    span.setAttribute('amount', m.body.amount);
    await pause(3);
    span.end();
    await pause(3);
    if (failWith !== undefined) throw failWith;
  }
}

const SCOPE = 'v1:billing:Billing.onMessage';
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const quiet: IdempotencyLogger = { debug() {}, info() {}, warn() {}, error() {} };

let sdk: InMemorySdk;
let removeContextManager: () => void;
let uninstallInjector: () => void;

beforeAll(() => {
  removeContextManager = useContextManager();
  uninstallInjector = installTraceContextInjector();
});
afterAll(() => {
  uninstallInjector();
  removeContextManager();
});
beforeEach(() => {
  sdk = inMemorySdk();
  // The handler's own tracer comes from the global provider, as an application's would.
  trace.setGlobalTracerProvider(sdk.tracerProvider);
  failWith = undefined;
});
afterEach(async () => {
  trace.disable();
  metrics.disable();
  await sdk.shutdown();
});

function instrumentation(options: OpenTelemetryInstrumentationOptions = {}) {
  return new OpenTelemetryInstrumentation({
    tracerProvider: sdk.tracerProvider,
    meterProvider: sdk.meterProvider,
    ...options,
  });
}

/** A consumer process: the engine on memory adapters, the instrumentation bound, a broker connection. */
async function consumer(broker: InMemoryBroker, options?: OpenTelemetryInstrumentationOptions) {
  const container = new Container();
  container.load(new IdempotencyModule());
  container.rebind(IDEMPOTENCY_LOGGER).toConstantValue(quiet);
  container.bind(IDEMPOTENCY_INSTRUMENTATION).toConstantValue(instrumentation(options));
  container.bind(MESSAGE_TRANSPORT).toConstantValue(broker.connect());
  container.bind(Billing).toSelf().inSingletonScope();
  const registry = new ListenerRegistry(container, { retryBaseDelayMs: 5, retryMaxDelayMs: 10 });
  await registry.start();
  return { container, registry };
}

/** Publishes inside a PRODUCER span, with the properties a publisher helper sends (its traceparent). */
function publishTraced(broker: InMemoryBroker, key: string, amount = 100) {
  const producer = sdk.tracerProvider
    .getTracer('shop')
    .startSpan('publish payments', { kind: SpanKind.PRODUCER });
  const messageId = context.with(trace.setSpan(ROOT_CONTEXT, producer), () =>
    broker.publish('payments', { keys: [key], body: { amount }, properties: { ...injectTraceContext({}) } }),
  );
  producer.end();
  return { producer, messageId };
}

const processSpans = () => sdk.spans().filter((s) => s.name === 'process payments');
const eventNames = (s: ReadableSpan) => s.events.map((e) => e.name);

describe('a message through the listener registry, with the SDK registered', () => {
  it('a first-time message and its duplicate: one CONSUMER process span each, per the messaging conventions, child of and linked to the producer span', async () => {
    const broker = new InMemoryBroker();
    const { registry } = await consumer(broker);
    const first = publishTraced(broker, 'PAY-1');
    await broker.idle(5_000);
    const second = publishTraced(broker, 'PAY-1');
    await broker.idle(5_000);
    await registry.stop();

    const [processed, duplicate] = processSpans();
    expect(processSpans()).toHaveLength(2);
    for (const [span, { producer, messageId }] of [
      [processed, first],
      [duplicate, second],
    ] as const) {
      expect(span?.kind).toBe(SpanKind.CONSUMER);
      expect(span?.attributes).toMatchObject({
        'messaging.system': 'in_memory',
        'messaging.operation.type': 'process',
        'messaging.operation.name': 'process',
        'messaging.destination.name': 'payments',
        'messaging.consumer.group.name': 'billing',
        'messaging.message.id': messageId,
        [ATTR.SCOPE]: SCOPE,
        [ATTR.HANDLER]: 'Billing.onMessage',
        [ATTR.ATTEMPT]: 1,
      });
      expect(span?.attributes[ATTR.CACHE_BYPASSED]).toBeUndefined();
      // The producer's span is the parent (one trace) and the link.
      expect(span?.spanContext().traceId).toBe(producer.spanContext().traceId);
      expect(span?.parentSpanContext?.spanId).toBe(producer.spanContext().spanId);
      expect(span?.links.map((l) => l.context.spanId)).toEqual([producer.spanContext().spanId]);
      expect(span?.attributes[ATTR.KEY]).toBeUndefined();
      expect(span?.status.code).toBe(SpanStatusCode.UNSET);
    }
    expect(processed?.attributes).toMatchObject({ [ATTR.OUTCOME]: 'processed', [ATTR.FENCE]: 1 });
    expect(processed?.attributes[ATTR.TIER]).toBeUndefined();
    expect(duplicate?.attributes).toMatchObject({ [ATTR.OUTCOME]: 'duplicate', [ATTR.TIER]: 'cache' });

    // Each store and cache call is an event with its duration; the handler's span is a child.
    // The registry hands the engine batches: its cache read is one getMany, of one message here.
    expect(eventNames(processed as ReadableSpan)).toEqual([
      'cache getMany',
      'store begin',
      'store claim',
      'store complete',
      'store commit',
      'cache set',
    ]);
    for (const event of processed?.events ?? [])
      expect(event.attributes?.[ATTR.DURATION_MS]).toBeGreaterThanOrEqual(0);
    expect(eventNames(duplicate as ReadableSpan)).toEqual(['cache getMany']);
    const charges = sdk.spans().filter((s) => s.name === 'charge');
    expect(charges).toHaveLength(1);
    expect(charges[0]?.parentSpanContext?.spanId).toBe(processed?.spanContext().spanId);
  });

  it('records the metrics: outcomes by outcome, tier and scope, durations, store and cache calls, none in flight', async () => {
    const broker = new InMemoryBroker();
    const { registry } = await consumer(broker);
    publishTraced(broker, 'PAY-1');
    await broker.idle(5_000);
    publishTraced(broker, 'PAY-1');
    publishTraced(broker, 'PAY-2');
    await broker.idle(5_000);
    await registry.stop();

    const outcomes = await sdk.sums(METRIC.OUTCOMES);
    expect(pointWith(outcomes, { [ATTR.OUTCOME]: 'processed', [ATTR.SCOPE]: SCOPE })).toBe(2);
    expect(
      pointWith(outcomes, { [ATTR.OUTCOME]: 'duplicate', [ATTR.TIER]: 'cache', [ATTR.SCOPE]: SCOPE }),
    ).toBe(1);
    expect(outcomes).toHaveLength(2);

    const durations = await sdk.histograms(METRIC.MESSAGE_DURATION);
    expect(durations.map((p) => [p.attributes, p.value.count])).toEqual(
      expect.arrayContaining([
        [{ [ATTR.OUTCOME]: 'processed', [ATTR.SCOPE]: SCOPE }, 2],
        [{ [ATTR.OUTCOME]: 'duplicate', [ATTR.SCOPE]: SCOPE, [ATTR.TIER]: 'cache' }, 1],
      ]),
    );
    for (const p of durations) expect(p.value.sum).toBeGreaterThan(0);

    const store = countsBy(await sdk.histograms(METRIC.STORE_DURATION), ATTR.OPERATION);
    expect(store).toEqual({ begin: 2, claim: 2, complete: 2, commit: 2 });
    // One read per received batch: PAY-1's copy and PAY-2 arrive together, so two reads in all.
    const cache = countsBy(await sdk.histograms(METRIC.CACHE_DURATION), ATTR.OPERATION);
    expect(cache).toEqual({ getMany: 2, set: 2 });

    expect(pointWith(await sdk.sums(METRIC.MESSAGES_ACTIVE), { [ATTR.SCOPE]: SCOPE })).toBe(0);
  });

  it('a batch of duplicates: one cache read for the batch, on every message span, counted once', async () => {
    const broker = new InMemoryBroker();
    const { registry } = await consumer(broker);
    for (const key of ['A', 'B', 'C']) publishTraced(broker, key);
    await broker.idle(5_000);
    sdk.exporter.reset();
    for (const key of ['A', 'B', 'C']) publishTraced(broker, key); // one receive, one batch
    await broker.idle(5_000);
    await registry.stop();

    const spans = processSpans();
    expect(spans.map((s) => s.attributes[ATTR.OUTCOME])).toEqual(['duplicate', 'duplicate', 'duplicate']);
    for (const span of spans) {
      expect(span.events.map((e) => [e.name, e.attributes?.['messaging.batch.message_count']])).toEqual([
        ['cache getMany', 3],
      ]);
    }
    const cache = countsBy(await sdk.histograms(METRIC.CACHE_DURATION), ATTR.OPERATION);
    expect(cache.getMany).toBe(2); // the first round's read and this one
  });

  it("stepMetrics: 'traced' times only the store and cache calls of recorded messages, 'none' none; outcomes and durations stay whole", async () => {
    // Records the messages that arrive while `sampling` is on, and drops the others.
    let sampling = true;
    const toggled: Sampler = {
      shouldSample: () => ({
        decision: sampling ? SamplingDecision.RECORD_AND_SAMPLED : SamplingDecision.NOT_RECORD,
      }),
      toString: () => 'toggled',
    };
    const expected = {
      all: { store: { begin: 2, claim: 2, complete: 2, commit: 2 }, cache: { getMany: 2, set: 2 } },
      traced: { store: { begin: 1, claim: 1, complete: 1, commit: 1 }, cache: { getMany: 1, set: 1 } },
      none: { store: {}, cache: {} },
    };
    for (const stepMetrics of ['all', 'traced', 'none'] as const) {
      await sdk.shutdown();
      sdk = inMemorySdk(toggled);
      trace.disable();
      trace.setGlobalTracerProvider(sdk.tracerProvider);
      const broker = new InMemoryBroker();
      const { registry } = await consumer(broker, { stepMetrics });
      sampling = true;
      publishTraced(broker, 'PAY-1');
      await broker.idle(5_000);
      sampling = false;
      publishTraced(broker, 'PAY-2');
      await broker.idle(5_000);
      await registry.stop();

      expect(processSpans(), stepMetrics).toHaveLength(1);
      expect(countsBy(await sdk.histograms(METRIC.STORE_DURATION), ATTR.OPERATION), stepMetrics).toEqual(
        expected[stepMetrics].store,
      );
      expect(countsBy(await sdk.histograms(METRIC.CACHE_DURATION), ATTR.OPERATION), stepMetrics).toEqual(
        expected[stepMetrics].cache,
      );
      const outcomes = await sdk.sums(METRIC.OUTCOMES);
      expect(pointWith(outcomes, { [ATTR.OUTCOME]: 'processed' }), stepMetrics).toBe(2);
      const durations = await sdk.histograms(METRIC.MESSAGE_DURATION);
      expect(
        durations.map((p) => p.value.count),
        stepMetrics,
      ).toEqual([2]);
    }
  });

  it('puts the key on spans only when asked (recordKeys), and never on metrics', async () => {
    const keyed = new InMemoryBroker();
    const a = await consumer(keyed, { recordKeys: true });
    publishTraced(keyed, 'PAY-SECRET-1');
    await keyed.idle(5_000);
    await a.registry.stop();
    expect(processSpans()[0]?.attributes[ATTR.KEY]).toBe('PAY-SECRET-1');

    sdk.exporter.reset();
    const plain = new InMemoryBroker();
    const b = await consumer(plain);
    publishTraced(plain, 'PAY-SECRET-2');
    await plain.idle(5_000);
    await b.registry.stop();
    const everything = JSON.stringify([
      processSpans().map((s) => [s.attributes, s.events.map((e) => e.attributes)]),
      ...(await Promise.all(Object.values(METRIC).map((m) => sdk.points(m)))).map((ps) =>
        ps.map((p) => p.attributes),
      ),
    ]);
    expect(everything).not.toContain('PAY-SECRET');
  });

  it('a failed handler and a payload conflict end with status ERROR and the error recorded; neither a duplicate nor a copy in flight does', async () => {
    const broker = new InMemoryBroker({ maxDeliveries: 2 });
    const { registry } = await consumer(broker);
    failWith = new RangeError('card declined');
    publishTraced(broker, 'PAY-F');
    await broker.idle(5_000);
    failWith = undefined;
    publishTraced(broker, 'PAY-C', 100);
    await broker.idle(5_000);
    publishTraced(broker, 'PAY-C', 999); // the same key with another payload
    await broker.idle(5_000);
    await registry.stop();

    const failed = processSpans().filter((s) => s.attributes[ATTR.OUTCOME] === 'failed');
    expect(failed).toHaveLength(2); // both deliveries, then the dead letter
    expect(failed.map((s) => s.attributes[ATTR.ATTEMPT])).toEqual([1, 2]);
    for (const span of failed) {
      expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'card declined' });
      expect(span.attributes['error.type']).toBe('RangeError');
      expect(span.events.at(-1)?.name).toBe('exception');
      expect(span.events.at(-1)?.attributes?.['exception.message']).toBe('card declined');
      expect(eventNames(span)).toContain('store rollback');
    }
    const conflict = processSpans().find((s) => s.attributes[ATTR.OUTCOME] === 'conflict');
    expect(conflict?.status.code).toBe(SpanStatusCode.ERROR);
    expect(conflict?.attributes).toMatchObject({
      'error.type': 'PayloadConflictError',
      [ATTR.ERROR_CODE]: 'PAYLOAD_CONFLICT',
    });
    for (const span of processSpans().filter((s) =>
      ['processed', 'duplicate'].includes(String(s.attributes[ATTR.OUTCOME])),
    ))
      expect(span.status.code).toBe(SpanStatusCode.UNSET);
  });
});

describe('a direct call', () => {
  function engineWith(options?: OpenTelemetryInstrumentationOptions) {
    const container = new Container();
    container.load(new IdempotencyModule());
    container.rebind(IDEMPOTENCY_LOGGER).toConstantValue(quiet);
    container.bind(IDEMPOTENCY_INSTRUMENTATION).toConstantValue(instrumentation(options));
    container.bind(Billing).toSelf().inSingletonScope();
    const engine = container.get<IdempotencyEngine>(IDEMPOTENCY_ENGINE);
    const target = getHandlerMethod(Billing, 'onMessage') as HandlerMethod;
    const instance = container.get(Billing);
    const message = (key: string): Payment => ({
      messageId: `M-${key}`,
      topic: 'payments',
      keys: [key],
      body: { amount: 1 },
      properties: {},
      deliveryAttempt: 1,
    });
    return {
      run: (key: string) => engine.execute(target, instance, message(key), deliveryInfo({ attempt: 1 })),
    };
  }

  it('is an INTERNAL span inside the active span; a copy in flight is no error', async () => {
    const { run } = engineWith();
    const request = sdk.tracerProvider.getTracer('http').startSpan('POST /pay', { kind: SpanKind.SERVER });
    const [a, b] = await context.with(trace.setSpan(ROOT_CONTEXT, request), () =>
      Promise.all([run('K'), run('K')]),
    );
    request.end();
    expect([a.kind, b.kind].sort()).toEqual(['inFlight', 'processed']);
    const spans = sdk.spans().filter((s) => s.name === 'idempotent Billing.onMessage');
    expect(spans).toHaveLength(2);
    for (const span of spans) {
      expect(span.kind).toBe(SpanKind.INTERNAL);
      expect(span.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
      expect(span.status.code).toBe(SpanStatusCode.UNSET);
      expect(span.attributes['messaging.system']).toBeUndefined();
    }
    const inFlight = spans.find((s) => s.attributes[ATTR.OUTCOME] === 'inFlight');
    expect(inFlight?.attributes[ATTR.FENCE]).toBe(1); // the holder's claim
  });

  it("with steps: 'spans', each store and cache call is a child span inside the message's", async () => {
    const { run } = engineWith({ steps: 'spans' });
    await run('S');
    const parent = sdk.spans().find((s) => s.name === 'idempotent Billing.onMessage') as ReadableSpan;
    const children = sdk.spans().filter((s) => s.parentSpanContext?.spanId === parent.spanContext().spanId);
    expect(children.map((s) => s.name).sort()).toEqual(
      [
        'cache get',
        'cache set',
        'charge',
        'store begin',
        'store claim',
        'store commit',
        'store complete',
      ].sort(),
    );
    expect(parent.events).toEqual([]);
    const ms = (t: [number, number]) => t[0] * 1e3 + t[1] / 1e6;
    for (const child of children) {
      expect(ms(child.startTime)).toBeGreaterThanOrEqual(ms(parent.startTime) - 0.01);
      expect(ms(child.endTime)).toBeLessThanOrEqual(ms(parent.endTime) + 0.01);
    }
  });

  it('makeIdempotent takes the instrumentation too', async () => {
    async function charge(_m: { id: string }) {
      return 'ok';
    }
    const idempotentCharge = makeIdempotent(charge, {
      key: (m) => m.id,
      store: new MemoryIdempotencyStore(),
      logger: quiet,
      instrumentation: instrumentation(),
    });
    await idempotentCharge({ id: 'X' });
    await idempotentCharge({ id: 'X' });
    expect(sdk.spans().map((s) => [s.name, s.attributes[ATTR.OUTCOME]])).toEqual([
      ['idempotent charge.handle', 'processed'],
      ['idempotent charge.handle', 'duplicate'],
    ]);
    expect(() =>
      makeIdempotent(async () => 1, {
        key: () => 'k',
        scope: 's',
        store: new MemoryIdempotencyStore(),
        instrumentation: {} as never,
      }),
    ).toThrow(InvalidOptionError);
  });
});

describe('the outcomes counter, read at collection from counts kept per outcome, tier and scope', () => {
  it('after N duplicates and M first-time messages of two scopes: each series its own count, cumulative across collections', async () => {
    const inst = instrumentation({ steps: 'none' });
    // The scopes are versioned (`v1:`). Scope `cached` keeps one token in its cache: a duplicate of
    // that one is recognised by the cache, of an older one by the store. Scope `uncached`: by the store.
    const cached = makeIdempotent(async (_m: { id: string }) => 'ok', {
      key: (m) => m.id,
      scope: 'cached',
      store: new MemoryIdempotencyStore(),
      cache: new MemoryIdempotencyCache({ maxEntries: 1 }),
      logger: quiet,
      instrumentation: inst,
    });
    const uncached = makeIdempotent(async (_m: { id: string }) => 'ok', {
      key: (m) => m.id,
      scope: 'uncached',
      store: new MemoryIdempotencyStore(),
      cache: new NoIdempotencyCache(),
      logger: quiet,
      instrumentation: inst,
    });
    const [N, M] = [5, 3];
    for (let i = 0; i < M; i++) await cached({ id: `F${i}` });
    for (let i = 0; i < N; i++) await cached({ id: `F${M - 1}` }); // the one in the cache
    await cached({ id: 'F0' }); // gone from the cache: the store knows
    for (let i = 0; i < 2; i++) await uncached({ id: `U${i}` });
    for (let i = 0; i < 4; i++) await uncached({ id: 'U0' });

    const series = (points: { attributes: Record<string, unknown>; value: unknown }[]) =>
      points
        .map((p) => [p.attributes[ATTR.SCOPE], p.attributes[ATTR.OUTCOME], p.attributes[ATTR.TIER], p.value])
        .sort((a, b) => String(a.slice(0, 3)).localeCompare(String(b.slice(0, 3))));
    expect(series(await sdk.sums(METRIC.OUTCOMES))).toEqual([
      ['v1:cached', 'duplicate', 'cache', N],
      ['v1:cached', 'duplicate', 'store', 1],
      ['v1:cached', 'processed', undefined, M],
      ['v1:uncached', 'duplicate', 'store', 4],
      ['v1:uncached', 'processed', undefined, 2],
    ]);
    // The duration histogram has the same series, one record per message.
    const durations = await sdk.histograms(METRIC.MESSAGE_DURATION);
    expect(series(durations.map((p) => ({ attributes: p.attributes, value: p.value.count })))).toEqual([
      ['v1:cached', 'duplicate', 'cache', N],
      ['v1:cached', 'duplicate', 'store', 1],
      ['v1:cached', 'processed', undefined, M],
      ['v1:uncached', 'duplicate', 'store', 4],
      ['v1:uncached', 'processed', undefined, 2],
    ]);
    expect(series(await sdk.sums(METRIC.MESSAGES_ACTIVE))).toEqual([
      ['v1:cached', undefined, undefined, 0],
      ['v1:uncached', undefined, undefined, 0],
    ]);

    // A counter reports the total so far: a second collection after one more duplicate adds one.
    await cached({ id: `F${M - 1}` });
    expect(
      pointWith(await sdk.sums(METRIC.OUTCOMES), { [ATTR.SCOPE]: 'v1:cached', [ATTR.TIER]: 'cache' }),
    ).toBe(N + 1);
  });

  it('a message still in the handler is in the in-flight gauge, and in no outcome yet', async () => {
    let release = () => {};
    const held = new Promise<void>((r) => {
      release = r;
    });
    const slow = makeIdempotent(async (_m: { id: string }) => held, {
      key: (m) => m.id,
      scope: 'slow',
      store: new MemoryIdempotencyStore(),
      logger: quiet,
      instrumentation: instrumentation(),
    });
    const running = [slow({ id: 'A' }), slow({ id: 'B' })];
    await pause(5);
    expect(pointWith(await sdk.sums(METRIC.MESSAGES_ACTIVE), { [ATTR.SCOPE]: 'v1:slow' })).toBe(2);
    expect(await sdk.sums(METRIC.OUTCOMES)).toEqual([]);
    release();
    await Promise.all(running);
    expect(pointWith(await sdk.sums(METRIC.MESSAGES_ACTIVE), { [ATTR.SCOPE]: 'v1:slow' })).toBe(0);
    expect(pointWith(await sdk.sums(METRIC.OUTCOMES), { [ATTR.OUTCOME]: 'processed' })).toBe(2);
  });
});

describe('without an SDK', () => {
  it('declines every message while no provider is registered, so the engine does no telemetry work', () => {
    trace.disable();
    const probe = new OpenTelemetryInstrumentation().startMessage(
      {},
      { label: 'A.b', scope: 's' },
      undefined,
    );
    expect(probe).toBeUndefined();
  });

  it('uses the global providers registered before the first message', async () => {
    trace.setGlobalTracerProvider(sdk.tracerProvider);
    metrics.setGlobalMeterProvider(sdk.meterProvider);
    const probe = new OpenTelemetryInstrumentation().startMessage(
      {},
      { label: 'A.b', scope: 's' },
      undefined,
    );
    expect(probe).toBeDefined();
    probe?.end({
      kind: 'processed',
      handler: 'A.b',
      scope: 's',
      cacheBypassed: false,
      unprotected: false,
      attempt: 1,
      durationMs: 0,
    });
    expect(sdk.spans().map((s) => s.name)).toEqual(['idempotent A.b']);
    expect(pointWith(await sdk.sums(METRIC.OUTCOMES), { [ATTR.OUTCOME]: 'processed' })).toBe(1);
  });
});

describe('options', () => {
  it('are checked at construction, naming the option', () => {
    expect(() => new OpenTelemetryInstrumentation({ recordKey: true } as never)).toThrow(
      /did you mean "recordKeys"/,
    );
    expect(() => new OpenTelemetryInstrumentation({ steps: 'all' as never })).toThrow(
      /OpenTelemetryInstrumentation\.steps.*'events', 'spans', 'none'/,
    );
    expect(() => new OpenTelemetryInstrumentation({ stepMetrics: 'some' as never })).toThrow(
      /OpenTelemetryInstrumentation\.stepMetrics.*'all', 'traced', 'none'/,
    );
    expect(() => new OpenTelemetryInstrumentation({ tracerProvider: {} as never })).toThrow(
      InvalidOptionError,
    );
    expect(() => new OpenTelemetryInstrumentation({ messagingSystem: ' ' })).toThrow(InvalidOptionError);
  });

  it('messagingSystem names the system; producerAsParent: false starts a trace of its own, still linked', async () => {
    const broker = new InMemoryBroker();
    const { registry } = await consumer(broker, { messagingSystem: 'rocketmq', producerAsParent: false });
    const { producer } = publishTraced(broker, 'PAY-9');
    await broker.idle(5_000);
    await registry.stop();
    const [span] = processSpans();
    expect(span?.attributes['messaging.system']).toBe('rocketmq');
    expect(span?.parentSpanContext).toBeUndefined();
    expect(span?.spanContext().traceId).not.toBe(producer.spanContext().traceId);
    expect(span?.links[0]?.context.spanId).toBe(producer.spanContext().spanId);
  });
});

describe('the span tree the README shows', () => {
  it('one first-time message and one duplicate', async () => {
    const broker = new InMemoryBroker();
    const { registry } = await consumer(broker);
    publishTraced(broker, 'PAY-1');
    await broker.idle(5_000);
    publishTraced(broker, 'PAY-1');
    await broker.idle(5_000);
    await registry.stop();
    expect(spanTree(sdk.spans())).toBe(
      [
        'publish payments [PRODUCER]',
        '└─ process payments [CONSUMER outcome=processed fence=1] (linked to publish payments)',
        '   ├─ · cache getMany',
        '   ├─ · store begin',
        '   ├─ · store claim',
        '   ├─ charge [INTERNAL]',
        '   ├─ · store complete',
        '   ├─ · store commit',
        '   └─ · cache set',
        'publish payments [PRODUCER]',
        '└─ process payments [CONSUMER outcome=duplicate tier=cache] (linked to publish payments)',
        '   └─ · cache getMany',
      ].join('\n'),
    );
  });
});
