/**
 * What an instrumentation found when it looked for the SDK: a tracer and the metrics, each absent when
 * its provider is not registered, and the options they run with.
 */
import type { DeliverySubscription, InstrumentedHandler } from '@idempotent-mq/core/adapter';
import { type Attributes, SpanKind, type TextMapPropagator, type Tracer } from '@opentelemetry/api';
import type { EngineMetrics } from './engine-metrics.js';
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

/** The resolved tracer and metrics of one instrumentation, with the span shapes it has made. */
export class Telemetry {
  readonly #shapes = new WeakMap<InstrumentedHandler, Map<DeliverySubscription | undefined, SpanShape>>();

  constructor(
    readonly tracer: Tracer | undefined,
    readonly metrics: EngineMetrics | undefined,
    readonly options: TelemetryOptions,
  ) {}

  /**
   * The span of a handler's messages, made once per handler and subscription: `process <topic>`
   * (CONSUMER, with the messaging attributes) for a subscription's, `idempotent <Class.method>`
   * (INTERNAL) for a direct call's.
   */
  spanShape(handler: InstrumentedHandler, subscription: DeliverySubscription | undefined): SpanShape {
    let byHandler = this.#shapes.get(handler);
    if (!byHandler) {
      byHandler = new Map();
      this.#shapes.set(handler, byHandler);
    }
    let shape = byHandler.get(subscription);
    if (!shape) {
      const own = { [ATTR.HANDLER]: handler.label, [ATTR.SCOPE]: handler.scope };
      shape = subscription
        ? {
            name: `process ${subscription.topic}`,
            kind: SpanKind.CONSUMER,
            attributes: {
              [SEMCONV.MESSAGING_SYSTEM]:
                this.options.messagingSystem ?? messagingSystem(subscription.broker),
              [SEMCONV.MESSAGING_OPERATION_TYPE]: 'process',
              [SEMCONV.MESSAGING_OPERATION_NAME]: 'process',
              [SEMCONV.MESSAGING_DESTINATION_NAME]: subscription.topic,
              [SEMCONV.MESSAGING_CONSUMER_GROUP_NAME]: subscription.consumerGroup,
              ...own,
            },
          }
        : { name: `idempotent ${handler.label}`, kind: SpanKind.INTERNAL, attributes: own };
      byHandler.set(subscription, shape);
    }
    return shape;
  }
}
