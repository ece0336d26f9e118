/**
 * Telemetry for the bench: `@idempotent-mq/opentelemetry` on the OpenTelemetry SDK as an application
 * would run it (spans through a BatchSpanProcessor into an exporter that drops them, metrics into a
 * MeterProvider with a reader, the async-hooks context manager), and the same instrumentation with the
 * API alone, no SDK registered.
 *
 * The bench package does not depend on them: they are loaded from packages/opentelemetry, whose
 * (dev) dependencies they are, so that one copy of `@opentelemetry/api` serves both.
 */
import { createRequire } from 'node:module';
import {
  type DeliveryInfo,
  deliveryInfo,
  type IdempotencyCache,
  type IdempotencyInstrumentation,
  type IdempotencyStore,
  MemoryIdempotencyCache,
  MemoryIdempotencyStore,
} from '@idempotent-mq/core/adapter';
import type { Scenario } from './scenarios.js';

const OTEL_PACKAGE = new URL('../../../packages/opentelemetry/', import.meta.url);
const load = createRequire(new URL('package.json', OTEL_PACKAGE));

/** What the bench uses of `@idempotent-mq/opentelemetry`. */
interface OurPackage {
  OpenTelemetryInstrumentation: new (options?: {
    tracerProvider?: unknown;
    meterProvider?: unknown;
    steps?: 'events' | 'spans' | 'none';
    stepMetrics?: 'all' | 'traced' | 'none';
  }) => IdempotencyInstrumentation;
}

/** What the bench uses of the SDK. */
interface Sdk {
  trace: {
    BasicTracerProvider: new (config: { spanProcessors: unknown[] }) => { forceFlush(): Promise<void> };
    BatchSpanProcessor: new (exporter: unknown) => unknown;
  };
  metrics: {
    MeterProvider: new (options: { readers: unknown[] }) => object;
    MetricReader: abstract new () => object;
  };
  contextManager: { AsyncLocalStorageContextManager: new () => { enable(): unknown } };
  api: {
    context: {
      setGlobalContextManager(manager: unknown): boolean;
      disable(): void;
      with(context: unknown, fn: () => void): void;
    };
    ROOT_CONTEXT: { setValue(key: symbol, value: unknown): unknown };
    createContextKey(description: string): symbol;
  };
}

export interface BenchTelemetry {
  /** On the SDK: spans batched to an exporter that drops them, metrics held by a reader. */
  readonly sdk: IdempotencyInstrumentation;
  /**
   * On the same SDK, the least the instrumentation records: the span and the message's metrics, no
   * store or cache call on either (`steps: 'none'`, `stepMetrics: 'none'`).
   */
  readonly sdkLean: IdempotencyInstrumentation;
  /** The API with no SDK registered: what a library user pays who has not set OpenTelemetry up. */
  readonly apiOnly: IdempotencyInstrumentation;
  /**
   * Switches the context manager on (the SDK side's rounds) or off (the baseline's and the API-only
   * scenarios'), as NodeSDK would register it.
   */
  contextManager(on: boolean): void;
  /** Spans the exporter was handed (and dropped): proof that the SDK side traced. */
  exported(): number;
}

/** Loads the instrumentation and the SDK, and sets both sides up (nothing registered globally yet). */
export async function benchTelemetry(): Promise<BenchTelemetry> {
  const ours = (await import(new URL('dist/index.js', OTEL_PACKAGE).href)) as OurPackage;
  const sdk: Sdk = {
    trace: load('@opentelemetry/sdk-trace-base'),
    metrics: load('@opentelemetry/sdk-metrics'),
    contextManager: load('@opentelemetry/context-async-hooks'),
    api: load('@opentelemetry/api'),
  };
  let exported = 0;
  const dropping = {
    export: (spans: unknown[], done: (r: { code: 0 }) => void) => {
      exported += spans.length;
      done({ code: 0 });
    },
    shutdown: async () => {},
  };
  const tracerProvider = new sdk.trace.BasicTracerProvider({
    spanProcessors: [new sdk.trace.BatchSpanProcessor(dropping)],
  });
  // A reader that is never asked to collect: the SDK aggregates as it would between two scrapes.
  class HeldReader extends (sdk.metrics.MetricReader as new () => object) {
    async onShutdown() {}
    async onForceFlush() {}
  }
  const meterProvider = new sdk.metrics.MeterProvider({ readers: [new HeldReader()] });
  const manager = new sdk.contextManager.AsyncLocalStorageContextManager();
  let on = false;
  // Node's AsyncLocalStorage costs a promise nothing until it has run once (then it propagates its store
  // through every promise), so that switching it on runs it once, as any traced application has.
  const primed = sdk.api.ROOT_CONTEXT.setValue(sdk.api.createContextKey('bench'), true);
  const contextManager = (wanted: boolean) => {
    if (wanted === on) return;
    if (wanted) {
      sdk.api.context.setGlobalContextManager(manager.enable());
      sdk.api.context.with(primed, () => {});
    } else sdk.api.context.disable();
    on = wanted;
  };
  return {
    sdk: new ours.OpenTelemetryInstrumentation({ tracerProvider, meterProvider }),
    sdkLean: new ours.OpenTelemetryInstrumentation({
      tracerProvider,
      meterProvider,
      steps: 'none',
      stepMetrics: 'none',
    }),
    apiOnly: new ours.OpenTelemetryInstrumentation(),
    contextManager,
    exported: () => exported,
  };
}

/** One process-wide SDK for the telemetry scenarios of both concurrencies. */
let telemetry: Promise<BenchTelemetry> | undefined;

/** What a broker delivery brings: its id and the producer's trace context in its properties. */
const tracedPayment = (key: string) => ({
  keys: [key],
  body: { amount: 100 },
  messageId: key,
  properties: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
});
type TracedPayment = ReturnType<typeof tracedPayment>;

/** The delivery the listener registry passes: the subscription makes the span a CONSUMER `process`. */
const DELIVERY = deliveryInfo({
  attempt: 1,
  subscription: { topic: 'payments', consumerGroup: 'bench', broker: 'RocketMQ' },
});

/** What the telemetry scenarios take from the main bench: its engine, connections and helpers. */
export interface TelemetryBench {
  readonly concurrency: number;
  /** The engine on a store and cache (the bench's consumer, whose handler inserts in `ctx.trx`). */
  engine(
    store: IdempotencyStore,
    cache: IdempotencyCache,
    options: { instrumentation?: IdempotencyInstrumentation; delivery: DeliveryInfo },
  ): { one(m: TracedPayment): Promise<void> };
  /** The bench's Redis cache. */
  readonly redisCache: IdempotencyCache;
  /** A `KnexIdempotencyStore` on the bench's PostgreSQL and its token table. */
  pgStore(): IdempotencyStore;
  /** A key unique to this run and concurrency. */
  key(what: string, i: number): string;
  /** Runs `op(0 … n-1)` a few at a time. */
  inParallel(n: number, op: (i: number) => Promise<void>): Promise<void>;
}

/**
 * The cost of `@idempotent-mq/opentelemetry`: each path with the instrumentation bound beside the same
 * path without it. The target (≤ 10% slower on the SDK at 64 in flight) is held on the real
 * paths: a duplicate answered by the Redis cache, and a first-time message in one PostgreSQL transaction
 * with the Redis cache. The memory-adapter paths cost a few microseconds each, so that the SDK's own
 * per-message work (a span, two histogram records: ~8 µs here) is most of what they measure: reported as
 * the worst case, with no target. With the API alone (no SDK registered) the target is ≤ 2% everywhere.
 * The SDK scenarios run both sides with the SDK's context manager on, as a NodeSDK application does, so
 * that they measure what binding the instrumentation adds; what the context manager itself costs (Node's
 * AsyncLocalStorage, paid by every promise) is its own scenario.
 */
export async function telemetryScenarios(bench: TelemetryBench): Promise<Scenario[]> {
  telemetry ??= benchTelemetry();
  const t = await telemetry;
  const { concurrency: c, key, inParallel } = bench;
  const POOL = 1000;
  const side = (
    cache: IdempotencyCache,
    instrumentation?: IdempotencyInstrumentation,
    store?: IdempotencyStore,
  ) =>
    bench.engine(store ?? new MemoryIdempotencyStore({ maxRecords: 100_000 }), cache, {
      ...(instrumentation ? { instrumentation } : {}),
      delivery: DELIVERY,
    });
  /** The duplicate path's tokens, completed before it is measured. */
  const completed = async (engine: ReturnType<typeof side>, what: string) => {
    await inParallel(POOL, (i) => engine.one(tracedPayment(key(what, i))));
    return (i: number) => engine.one(tracedPayment(key(what, i % POOL)));
  };
  const withContextManager = (s: 'ours' | 'baseline' | 'done') => t.contextManager(s !== 'done');
  const withoutContextManager = () => t.contextManager(false);
  const target = (ratio: number) => (c === 64 ? ratio : undefined);
  const unbound = 'the same path, instrumentation unbound';
  const list: Scenario[] = [];

  // The real paths, where the target applies.
  const [redisOn, redisOff] = [
    await completed(side(bench.redisCache, t.sdk), 'tdup-redis-on'),
    await completed(side(bench.redisCache), 'tdup-redis-off'),
  ];
  list.push({
    name: 'telemetry: duplicate (Redis cache hit), SDK vs unbound',
    concurrency: c,
    target: target(0.9),
    baselineLabel: unbound,
    enter: withContextManager,
    ours: redisOn,
    baseline: redisOff,
  });
  const pgOn = side(bench.redisCache, t.sdk, bench.pgStore());
  const pgOff = side(bench.redisCache, undefined, bench.pgStore());
  list.push({
    name: 'telemetry: first-time, Redis + PostgreSQL (transactional), SDK vs unbound',
    concurrency: c,
    target: target(0.9),
    baselineLabel: unbound,
    enter: withContextManager,
    ours: (i) => pgOn.one(tracedPayment(key('tft-pg-on', i))),
    baseline: (i) => pgOff.one(tracedPayment(key('tft-pg-off', i))),
  });

  // The memory adapters: the SDK's worst case (no target), and the API alone (≤ 2%).
  for (const [label, tag, instrumentation, ratio, enter] of [
    ['SDK', 'sdk', t.sdk, undefined, withContextManager],
    ["SDK, steps and stepMetrics 'none'", 'lean', t.sdkLean, undefined, withContextManager],
    ['API without SDK', 'api', t.apiOnly, 0.98, withoutContextManager],
  ] as const) {
    const on = side(new MemoryIdempotencyCache(), instrumentation);
    const off = side(new MemoryIdempotencyCache());
    const [dupOn, dupOff] = [await completed(on, `tdup-${tag}-on`), await completed(off, `tdup-${tag}-off`)];
    const worst = ratio === undefined ? ' (worst case)' : '';
    list.push(
      {
        name: `telemetry: duplicate (memory), ${label} vs unbound${worst}`,
        concurrency: c,
        ...(ratio === undefined ? {} : { target: target(ratio) }),
        baselineLabel: unbound,
        enter,
        ours: dupOn,
        baseline: dupOff,
      },
      {
        name: `telemetry: first-time (memory), ${label} vs unbound${worst}`,
        concurrency: c,
        ...(ratio === undefined ? {} : { target: target(ratio) }),
        baselineLabel: unbound,
        enter,
        ours: (i) => on.one(tracedPayment(key(`tft-${tag}-on`, i))),
        baseline: (i) => off.one(tracedPayment(key(`tft-${tag}-off`, i))),
      },
    );
  }

  // No instrumentation on either side: the price of the context manager alone.
  const bare = await completed(side(new MemoryIdempotencyCache()), 'tdup-bare');
  list.push({
    name: "telemetry: duplicate (memory), the SDK's context manager alone vs none",
    concurrency: c,
    baselineLabel: 'the same path, no context manager',
    enter: (s) => t.contextManager(s === 'ours'),
    ours: bare,
    baseline: bare,
  });
  return list;
}
