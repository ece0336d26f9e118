/**
 * One message's telemetry, from the engine's `startMessage` to its outcome: the `process <topic>` span
 * (CONSUMER; INTERNAL `idempotent <Class.method>` for a direct call), its store and cache calls as
 * events or child spans, and the message's metrics.
 */
import {
  type DeliveryInfo,
  IdempotencyError,
  type IdempotencyOutcome,
  type InstrumentedHandler,
  type MessageProbe,
  type StepTiming,
} from '@idempotent-mq/core/adapter';
import {
  type Attributes,
  type Context,
  context,
  defaultTextMapGetter,
  type HrTime,
  INVALID_SPANID,
  isSpanContextValid,
  type Link,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import type { ScopeMetrics } from './engine-metrics.js';
import { ATTR, SEMCONV } from './names.js';
import type { Telemetry } from './telemetry.js';
import { readTraceContext, w3cTraceContext } from './w3c-trace-context.js';

/** The engine's probe of one message: its span (when tracing) and its metrics (when metering). */
export class ProcessSpan implements MessageProbe {
  readonly #telemetry: Telemetry;
  readonly #scope: ScopeMetrics | undefined;
  readonly #started = performance.now();
  readonly #span: Span | undefined;
  /** The context the message's path runs in (the span's), when there is a span to propagate. */
  readonly #context: Context | undefined;

  constructor(
    telemetry: Telemetry,
    message: unknown,
    handler: InstrumentedHandler,
    delivery: DeliveryInfo | undefined,
  ) {
    this.#telemetry = telemetry;
    const { tracer, options } = telemetry;
    const shared = telemetry.of(handler, delivery?.subscription);
    this.#scope = shared.metrics;
    if (this.#scope) this.#scope.active++;
    if (!tracer) return;

    const active = context.active();
    const producer = producerContext(telemetry, message);
    const links: Link[] | undefined = producer ? [{ context: producer }] : undefined;
    // One message per span: the conventions allow its creation context as the parent, but not over
    // a span already active (a direct call inside a request), which stays the parent. A delivery
    // runs in the root context: nothing to look for there.
    const parent =
      producer && options.producerAsParent && (active === ROOT_CONTEXT || !hasSpan(active))
        ? trace.setSpanContext(active, producer)
        : active;
    const shape = shared.span;
    const span = tracer.startSpan(
      shape.name,
      { kind: shape.kind, attributes: shape.attributes, links, startTime: hrTime(this.#started) },
      parent,
    );
    const id = (message as { messageId?: unknown } | null | undefined)?.messageId;
    if (shape.kind === SpanKind.CONSUMER && typeof id === 'string' && id !== '')
      span.setAttribute(SEMCONV.MESSAGING_MESSAGE_ID, id);
    this.#span = span;
    const own = span.spanContext();
    // A no-op tracer's span has no context to propagate.
    this.#context = own.spanId !== INVALID_SPANID ? trace.setSpan(parent, span) : undefined;
  }

  /** Runs the message's path with its span active, so that the handler's own spans are its children. */
  run<T>(path: () => T): T {
    return this.#context ? context.with(this.#context, path) : path();
  }

  /** A store or cache call: into its latency histogram (once per call, as `stepMetrics` says), and onto the span. */
  step(timing: StepTiming): void {
    const errorType = timing.error === undefined ? undefined : errorTypeOf(timing.error);
    const span = this.#span;
    const recording = span?.isRecording() === true;
    const { metrics, options } = this.#telemetry;
    if (metrics && !timing.repeated) {
      const { stepMetrics } = options;
      if (stepMetrics === 'all' || (stepMetrics === 'traced' && recording)) metrics.step(timing, errorType);
    }
    if (!recording) return;
    const name = stepName(timing);
    const { steps } = options;
    if (steps === 'events') {
      const attributes: Attributes = { [ATTR.DURATION_MS]: timing.durationMs };
      if (errorType !== undefined) attributes[SEMCONV.ERROR_TYPE] = errorType;
      if (timing.messages > 1) attributes[SEMCONV.MESSAGING_BATCH_MESSAGE_COUNT] = timing.messages;
      (span as Span).addEvent(name, attributes, hrTime(timing.startedAt));
    } else if (steps === 'spans') {
      const child = (this.#telemetry.tracer as NonNullable<Telemetry['tracer']>).startSpan(
        name,
        {
          kind: SpanKind.INTERNAL,
          startTime: hrTime(timing.startedAt),
          attributes: { [ATTR.OPERATION]: timing.operation },
        },
        this.#context ?? ROOT_CONTEXT,
      );
      if (timing.messages > 1) child.setAttribute(SEMCONV.MESSAGING_BATCH_MESSAGE_COUNT, timing.messages);
      if (errorType !== undefined) {
        child.setAttribute(SEMCONV.ERROR_TYPE, errorType);
        child.setStatus({ code: SpanStatusCode.ERROR, message: messageOf(timing.error) });
      }
      child.end(hrTime(timing.startedAt + timing.durationMs));
    }
  }

  /** The outcome: counted and timed, written on the span, which then ends. */
  end(outcome: IdempotencyOutcome): void {
    const ended = performance.now();
    if (this.#scope) {
      const seconds = (ended - this.#started) / 1000;
      this.#telemetry.metrics?.outcome(this.#scope, outcome.kind, outcome.tier, seconds);
    }
    const span = this.#span;
    if (!span) return;
    if (span.isRecording()) describe(span, outcome, this.#telemetry.options.recordKeys);
    span.end(hrTime(ended));
  }
}

/** The outcome on the span: our attributes, and an error status for `failed` and `conflict`. */
function describe(span: Span, outcome: IdempotencyOutcome, recordKeys: boolean): void {
  span.setAttribute(ATTR.OUTCOME, outcome.kind);
  if (outcome.tier !== undefined) span.setAttribute(ATTR.TIER, outcome.tier);
  span.setAttribute(ATTR.ATTEMPT, outcome.attempt);
  const fence = outcome.fence ?? outcome.record?.fence;
  if (fence !== undefined) span.setAttribute(ATTR.FENCE, fence);
  if (outcome.cacheBypassed) span.setAttribute(ATTR.CACHE_BYPASSED, true);
  if (outcome.transientRetries) span.setAttribute(ATTR.TRANSIENT_RETRIES, outcome.transientRetries);
  if (outcome.unprotected) span.setAttribute(ATTR.UNPROTECTED, true);
  if (recordKeys && outcome.token) span.setAttribute(ATTR.KEY, outcome.token.key);
  if (outcome.kind !== 'failed' && outcome.kind !== 'conflict') return;
  const { error } = outcome;
  span.setAttribute(SEMCONV.ERROR_TYPE, errorTypeOf(error));
  if (error instanceof IdempotencyError) span.setAttribute(ATTR.ERROR_CODE, error.code);
  span.recordException(error instanceof Error ? error : String(error));
  span.setStatus({ code: SpanStatusCode.ERROR, message: messageOf(error) });
}

/** The producer's span context, from the `traceparent` (by the propagator) in the message's properties. */
function producerContext(telemetry: Telemetry, message: unknown): SpanContext | undefined {
  const properties = (message as { properties?: unknown } | null | undefined)?.properties;
  if (typeof properties !== 'object' || properties === null) return undefined;
  const { propagator } = telemetry.options;
  // Our own propagator is read straight from the properties, without a context to make and unwrap.
  if (propagator === w3cTraceContext) return readTraceContext(properties as Record<string, unknown>);
  const producer = trace.getSpanContext(propagator.extract(ROOT_CONTEXT, properties, defaultTextMapGetter));
  return producer && isSpanContextValid(producer) ? producer : undefined;
}

/** `<target> <operation>` (`cache get`, `store claim`): the name of a step's event or span, made once each. */
const STEP_NAMES = new Map<string, Map<string, string>>();
function stepName({ target, operation }: StepTiming): string {
  let byOperation = STEP_NAMES.get(target);
  if (!byOperation) {
    byOperation = new Map();
    STEP_NAMES.set(target, byOperation);
  }
  let name = byOperation.get(operation);
  if (name === undefined) {
    name = `${target} ${operation}`;
    byOperation.set(operation, name);
  }
  return name;
}

function hasSpan(ctx: Context): boolean {
  const span = trace.getSpanContext(ctx);
  return span !== undefined && isSpanContextValid(span);
}

/**
 * A `performance.now()` time as the SDK's HrTime. Given explicitly to the message's span, its events and
 * its child spans, so that they share one time base: left to itself, the SDK anchors each span to
 * `Date.now()`, whose whole milliseconds can put a child up to 1 ms outside its parent.
 */
function hrTime(performanceMs: number): HrTime {
  const epochMs = performance.timeOrigin + performanceMs;
  const seconds = Math.floor(epochMs / 1000);
  return [seconds, Math.min(999_999_999, Math.round((epochMs - seconds * 1000) * 1e6))];
}

/** `error.type`: the error's class name, or `_OTHER` for what is not an `Error`. */
function errorTypeOf(error: unknown): string {
  return error instanceof Error ? error.name || error.constructor.name : '_OTHER';
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
