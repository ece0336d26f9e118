/**
 * What an instrumentation found when it looked for the SDK: a tracer and the metrics, each absent when
 * its provider is not registered, and the options they run with.
 */
import type { DeliverySubscription, InstrumentedHandler } from '@idempotent-mq/core/adapter';
import { type Attributes, SpanKind, type TextMapPropagator, type Tracer } from '@opentelemetry/api';
import type { EngineMetrics, ScopeMetrics } from './engine-metrics.js';
import { ATTR, messagingSystem, SEMCONV } from './names.js';

/** How store and cache calls appear on a message's span. */
export type StepRecording = 'events' | 'spans' | 'none';

/**
 * Which store and cache calls go into their latency histograms: `'all'`, only those of messages whose
 * span is recorded (`'traced'`: the sampler's share), or `'none'`.
 */
export type StepMetrics = 'all' | 'traced' | 'none';

/** The instrumentation's options once checked, defaults applied. */
export interface TelemetryOptions {
  readonly recordKeys: boolean;
  readonly steps: StepRecording;
  readonly stepMetrics: StepMetrics;
  readonly producerAsParent: boolean;
  readonly messagingSystem: string | undefined;
  readonly propagator: TextMapPropagator;
}

/** What every message of one handler and subscription shares: its span's name, kind and first attributes. */
export interface SpanShape {
  readonly name: string;
  readonly kind: SpanKind;
  readonly attributes: Attributes;
}

/**
 * What the messages of one handler and subscription share, looked up once per message: their span's
 * shape, and their scope's metrics (when metering).
 */
export interface HandlerTelemetry {
  readonly span: SpanShape;
  readonly metrics: ScopeMetrics | undefined;
}

/** The resolved tracer and metrics of one instrumentation, with what it has made per handler. */
export class Telemetry {
  readonly #handlers = new WeakMap<
    InstrumentedHandler,
    Map<DeliverySubscription | undefined, HandlerTelemetry>
  >();

  constructor(
    readonly tracer: Tracer | undefined,
    readonly metrics: EngineMetrics | undefined,
    readonly options: TelemetryOptions,
  ) {}

  /**
   * What a handler's messages share, made once per handler and subscription: the span's shape
   * (`process <topic>`, CONSUMER, with the messaging attributes, for a subscription's;
   * `idempotent <Class.method>`, INTERNAL, for a direct call's) and the scope's metrics.
   */
  of(handler: InstrumentedHandler, subscription: DeliverySubscription | undefined): HandlerTelemetry {
    let byHandler = this.#handlers.get(handler);
    if (!byHandler) {
      byHandler = new Map();
      this.#handlers.set(handler, byHandler);
    }
    let shared = byHandler.get(subscription);
    if (!shared) {
      shared = { span: this.#spanShape(handler, subscription), metrics: this.metrics?.scope(handler.scope) };
      byHandler.set(subscription, shared);
    }
    return shared;
  }

  #spanShape(handler: InstrumentedHandler, subscription: DeliverySubscription | undefined): SpanShape {
    const own = { [ATTR.HANDLER]: handler.label, [ATTR.SCOPE]: handler.scope };
    return subscription
      ? {
          name: `process ${subscription.topic}`,
          kind: SpanKind.CONSUMER,
          attributes: {
            [SEMCONV.MESSAGING_SYSTEM]: this.options.messagingSystem ?? messagingSystem(subscription.broker),
            [SEMCONV.MESSAGING_OPERATION_TYPE]: 'process',
            [SEMCONV.MESSAGING_OPERATION_NAME]: 'process',
            [SEMCONV.MESSAGING_DESTINATION_NAME]: subscription.topic,
            [SEMCONV.MESSAGING_CONSUMER_GROUP_NAME]: subscription.consumerGroup,
            ...own,
          },
        }
      : { name: `idempotent ${handler.label}`, kind: SpanKind.INTERNAL, attributes: own };
  }
}
