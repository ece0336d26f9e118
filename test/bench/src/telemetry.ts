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
import type { IdempotencyInstrumentation } from '@idempotent-mq/core/adapter';

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
