/**
 * The SDK in memory for the tests: spans through a SimpleSpanProcessor into an InMemorySpanExporter,
 * metrics collected on demand by a reader, and the async-hooks context manager for the API.
 */
import { type Attributes, context, type HrTime } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { type DataPoint, type Histogram, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  type Sampler,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';

/** A reader that collects only when asked. */
class CollectingReader extends MetricReader {
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

/** The tracer and meter providers of a test, and what they recorded. */
export interface InMemorySdk {
  readonly exporter: InMemorySpanExporter;
  readonly tracerProvider: BasicTracerProvider;
  readonly meterProvider: MeterProvider;
  /** Spans ended so far. */
  spans(): ReadableSpan[];
  /** The data points of one metric, as collected now. */
  points(name: string): Promise<DataPoint<number | Histogram>[]>;
  /** The data points of a counter or up-down counter. */
  sums(name: string): Promise<DataPoint<number>[]>;
  /** The data points of a histogram. */
  histograms(name: string): Promise<DataPoint<Histogram>[]>;
  shutdown(): Promise<void>;
}

/** A fresh SDK in memory: nothing registered globally; the SDK's default sampler unless given one. */
export function inMemorySdk(sampler?: Sampler): InMemorySdk {
  const exporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(exporter)],
    ...(sampler ? { sampler } : {}),
  });
  const reader = new CollectingReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  const points = async (name: string) => {
    const { resourceMetrics } = await reader.collect();
    const metric = resourceMetrics.scopeMetrics
      .flatMap((s) => s.metrics)
      .find((m) => m.descriptor.name === name);
    return (metric?.dataPoints ?? []) as DataPoint<number | Histogram>[];
  };
  return {
    exporter,
    tracerProvider,
    meterProvider,
    spans: () => exporter.getFinishedSpans(),
    points,
    sums: async (name) => (await points(name)) as DataPoint<number>[],
    histograms: async (name) => (await points(name)) as DataPoint<Histogram>[],
    async shutdown() {
      await tracerProvider.shutdown();
      await meterProvider.shutdown();
    },
  };
}

/** Registers the async-hooks context manager (what NodeSDK does); returns its removal. */
export function useContextManager(): () => void {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  return () => context.disable();
}

/** Each histogram point's count, by the value of one attribute. */
export function countsBy(points: readonly DataPoint<Histogram>[], attribute: string): Record<string, number> {
  return Object.fromEntries(points.map((p) => [String(p.attributes[attribute]), p.value.count]));
}

/** The value of the data point whose attributes include `match`, or undefined. */
export function pointWith<T>(points: DataPoint<T>[], match: Attributes): T | undefined {
  return points.find((p) => Object.entries(match).every(([k, v]) => p.attributes[k] === v))?.value;
}

const KIND = ['INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'] as const;

function millis(t: HrTime): number {
  return t[0] * 1000 + t[1] / 1e6;
}

/**
 * The spans as a tree, one line each: name, kind, our outcome attributes; span events as `·` lines; a
 * link as `(linked to <name>)`. Timings left out, so that the picture is the same on every run.
 */
export function spanTree(spans: readonly ReadableSpan[]): string {
  const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
  const children = (id: string | undefined) =>
    spans
      .filter(
        (s) =>
          s.parentSpanContext?.spanId === id ||
          (id === undefined && !byId.has(s.parentSpanContext?.spanId ?? '')),
      )
      .sort((a, b) => millis(a.startTime) - millis(b.startTime));
  const lines: string[] = [];
  const walk = (span: ReadableSpan, prefix: string, last: boolean, root: boolean) => {
    const a = span.attributes;
    const facts = [
      KIND[span.kind] ?? String(span.kind),
      ...['idempotent_mq.outcome', 'idempotent_mq.tier', 'idempotent_mq.fence']
        .filter((k) => a[k] !== undefined)
        .map((k) => `${k.slice('idempotent_mq.'.length)}=${String(a[k])}`),
      ...(span.status.code === 2 ? ['status=ERROR'] : []),
    ];
    const linked = span.links
      .map((l) => byId.get(l.context.spanId)?.name)
      .filter((n): n is string => n !== undefined)
      .map((n) => ` (linked to ${n})`)
      .join('');
    lines.push(`${root ? '' : `${prefix}${last ? '└─ ' : '├─ '}`}${span.name} [${facts.join(' ')}]${linked}`);
    const inner = root ? '' : `${prefix}${last ? '   ' : '│  '}`;
    const kids = children(span.spanContext().spanId);
    const events = span.name.startsWith('process') || span.name.startsWith('idempotent') ? span.events : [];
    const items = [
      ...events.map((e) => ({ at: millis(e.time), line: `· ${e.name}` })),
      ...kids.map((k) => ({ at: millis(k.startTime), span: k })),
    ].sort((x, y) => x.at - y.at);
    items.forEach((item, i) => {
      const end = i === items.length - 1;
      if ('span' in item && item.span) walk(item.span, inner, end, false);
      else if ('line' in item) lines.push(`${inner}${end ? '└─ ' : '├─ '}${item.line}`);
    });
  };
  for (const root of children(undefined)) walk(root, '', true, true);
  return lines.join('\n');
}
