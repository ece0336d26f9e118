/**
 * `OpenTelemetryInstrumentation`: the engine's instrumentation port on the OpenTelemetry API. Bind it to
 * `IDEMPOTENCY_INSTRUMENTATION`; each message then gets a span and its metrics, on the SDK the
 * application registered. With no SDK registered it declines every message, and the engine does no
 * instrumentation work at all.
 */
import {
  booleanOption,
  checkOptionsObject,
  type DeliveryInfo,
  enumOption,
  type IdempotencyInstrumentation,
  type InstrumentedHandler,
  InvalidOptionError,
  type MessageProbe,
  textOption,
} from '@idempotent-mq/core/adapter';
import {
  createNoopMeter,
  type Meter,
  type MeterProvider,
  metrics,
  type TextMapPropagator,
  type Tracer,
  type TracerProvider,
  trace,
} from '@opentelemetry/api';
import { EngineMetrics } from './engine-metrics.js';
import { INSTRUMENTATION_NAME } from './names.js';
import { ProcessSpan } from './process-span.js';
import { type StepMetrics, type StepRecording, Telemetry, type TelemetryOptions } from './telemetry.js';
import { w3cTraceContext } from './w3c-trace-context.js';

/** Options of {@link OpenTelemetryInstrumentation}. */
export interface OpenTelemetryInstrumentationOptions {
  /**
   * Where spans go.
   * @defaultValue the API's global tracer provider, as registered when the first message arrives
   */
  readonly tracerProvider?: TracerProvider;
  /**
   * Where metrics go.
   * @defaultValue the API's global meter provider, as registered when the first message arrives
   */
  readonly meterProvider?: MeterProvider;
  /**
   * Put the idempotency key on spans (`idempotent_mq.key`). Keys are business data (a payment serial, an
   * order id): off unless you say so. Metrics never carry keys.
   * @defaultValue `false`
   */
  readonly recordKeys?: boolean;
  /**
   * How store and cache calls appear on a message's span: `'events'` (one event each, with its duration),
   * `'spans'` (a child span each: a clearer picture, and a span's cost each), or `'none'`. Their latency
   * histograms are recorded either way (see `stepMetrics`).
   * @defaultValue `'events'`
   */
  readonly steps?: StepRecording;
  /**
   * Which store and cache calls go into `idempotent_mq.store.duration` and `idempotent_mq.cache.duration`:
   * `'all'`; `'traced'`, only the calls of messages whose span is recorded, so that a sampler in the SDK
   * thins them as it thins spans (their distribution stays, their count is the sampled share: count calls
   * from `idempotent_mq.outcomes` or from the spans, not from these); or `'none'`. Each call recorded costs
   * the SDK an attribute hash, about a microsecond: more than a memory store's call itself.
   * @defaultValue `'all'`
   */
  readonly stepMetrics?: StepMetrics;
  /**
   * Make the producer's span (from the message's `traceparent`) the parent of the `process` span, so that
   * producer and consumer share one trace. It is linked either way; a span already active where the
   * message is handled (a direct call inside a request) stays the parent.
   * @defaultValue `true`
   */
  readonly producerAsParent?: boolean;
  /**
   * `messaging.system` on `process` spans.
   * @defaultValue from the transport's broker name: `rocketmq`, `rabbitmq`, `nats`, `in_memory`, ...
   */
  readonly messagingSystem?: string;
  /**
   * How the producer's context is read from the message's properties. Pass `propagation` (the API's
   * global propagator) to follow the SDK's choice; producers must then write it the same way.
   * @defaultValue W3C Trace Context (`traceparent`, `tracestate`)
   */
  readonly propagator?: TextMapPropagator;
}

const WHERE = 'OpenTelemetryInstrumentation';
const KNOWN = [
  'tracerProvider',
  'meterProvider',
  'recordKeys',
  'steps',
  'stepMetrics',
  'producerAsParent',
  'messagingSystem',
  'propagator',
] as const;
/** With no SDK found, the providers are looked for again after this many messages. */
const RECHECK_AFTER = 1024;

/**
 * Traces and metrics of every message the engine runs: a `process <topic>` CONSUMER span per message
 * (following the messaging semantic conventions, linked to the producer's span), and the metrics named
 * in `METRIC`.
 *
 * What a message costs on the SDK (measured on Node 20, SDK 2.12): the span, about 3 µs with its
 * attributes and link; one histogram record for the message and one per store or cache call, 1–2 µs each,
 * nearly all of it the SDK hashing the record's attributes (it caches nothing by object). The outcome
 * counts and the messages in flight are kept here and read at collection: no SDK call per message. On a
 * path of tens of microseconds (a duplicate answered by a Redis cache) that is a large share; on a
 * transactional first-time path, a few percent. `steps: 'none'` and `stepMetrics: 'none'` leave the
 * span and the message's own record.
 *
 * @example
 * ```ts
 * container.load(new IdempotencyModule());
 * container.bind(IDEMPOTENCY_INSTRUMENTATION).toConstantValue(new OpenTelemetryInstrumentation());
 * ```
 * @throws {@link InvalidOptionError} at once, naming the option, for an option out of range or misspelt.
 */
export class OpenTelemetryInstrumentation implements IdempotencyInstrumentation {
  readonly #options: TelemetryOptions;
  readonly #tracerProvider: TracerProvider | undefined;
  readonly #meterProvider: MeterProvider | undefined;
  #telemetry: Telemetry | undefined;
  #untilRecheck = 0;

  constructor(options: OpenTelemetryInstrumentationOptions = {}) {
    checkOptionsObject(options, KNOWN, WHERE);
    for (const [name, method] of [
      ['tracerProvider', 'getTracer'],
      ['meterProvider', 'getMeter'],
      ['propagator', 'extract'],
    ] as const) {
      const value = options[name] as Record<string, unknown> | undefined;
      if (value !== undefined && typeof value?.[method] !== 'function') {
        throw new InvalidOptionError(`${WHERE}.${name}`, `an OpenTelemetry ${name} (with ${method})`, value);
      }
    }
    textOption(WHERE, 'messagingSystem', options.messagingSystem);
    this.#tracerProvider = options.tracerProvider;
    this.#meterProvider = options.meterProvider;
    this.#options = {
      recordKeys: booleanOption(WHERE, 'recordKeys', options.recordKeys, false) as boolean,
      steps: enumOption(
        WHERE,
        'steps',
        options.steps,
        ['events', 'spans', 'none'],
        'events',
      ) as StepRecording,
      stepMetrics: enumOption(
        WHERE,
        'stepMetrics',
        options.stepMetrics,
        ['all', 'traced', 'none'],
        'all',
      ) as StepMetrics,
      producerAsParent: booleanOption(WHERE, 'producerAsParent', options.producerAsParent, true) as boolean,
      messagingSystem: options.messagingSystem,
      propagator: options.propagator ?? w3cTraceContext,
    };
  }

  /** A message enters the engine: its span and metrics, or nothing while no SDK is registered. */
  startMessage(
    message: unknown,
    handler: InstrumentedHandler,
    delivery: DeliveryInfo | undefined,
  ): MessageProbe | undefined {
    let telemetry = this.#telemetry;
    if (telemetry === undefined) {
      if (this.#untilRecheck-- > 0) return undefined;
      telemetry = this.#resolve();
      if (telemetry === undefined) {
        this.#untilRecheck = RECHECK_AFTER;
        return undefined;
      }
      this.#telemetry = telemetry;
    }
    return new ProcessSpan(telemetry, message, handler, delivery);
  }

  /** The tracer and the metrics of the registered SDK; `undefined` when neither is registered. */
  #resolve(): Telemetry | undefined {
    const tracer = this.#tracer();
    const meter = this.#meter();
    if (!tracer && !meter) return undefined;
    return new Telemetry(tracer, meter && new EngineMetrics(meter), this.#options);
  }

  #tracer(): Tracer | undefined {
    const provider = this.#tracerProvider ?? trace.getTracerProvider();
    // The global provider is a proxy: it has a tracer of its own only once an SDK is registered.
    const proxy = provider as { getDelegateTracer?: (name: string) => Tracer | undefined };
    if (this.#tracerProvider === undefined && typeof proxy.getDelegateTracer === 'function')
      return proxy.getDelegateTracer(INSTRUMENTATION_NAME);
    return provider.getTracer(INSTRUMENTATION_NAME);
  }

  #meter(): Meter | undefined {
    const meter = (this.#meterProvider ?? metrics.getMeterProvider()).getMeter(INSTRUMENTATION_NAME);
    return meter === createNoopMeter() ? undefined : meter;
  }
}
