/**
 * The engine's metrics on one meter. Histograms are recorded as messages go; the outcome counts and the
 * messages in flight are kept here as plain numbers and read by the meter at collection, so that
 * counting them costs a message no measurement call.
 */
import type { OutcomeKind, StepTiming } from '@idempotent-mq/core/adapter';
import type { Attributes, Histogram, Meter, ObservableResult } from '@opentelemetry/api';
import { ATTR, METRIC, SEMCONV } from './names.js';

// Seconds. A memory store answers in microseconds, a remote one in (tens of) milliseconds.
const CALL_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
];
const MESSAGE_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

/** One outcome series: its attributes and how many messages ended in it. */
interface OutcomeCount {
  readonly attributes: Attributes;
  count: number;
}

/** What the metrics keep per scope. */
export class ScopeMetrics {
  /** Messages of this scope in the engine now. */
  active = 0;
  readonly attributes: Attributes;
  /**
   * Each outcome's series, by tier (`''` for none) and kind: found without building a key per message,
   * and one attributes object per series, made once, handed to every record of it.
   */
  readonly #outcomes = new Map<string, Map<OutcomeKind, OutcomeCount>>();

  constructor(readonly scope: string) {
    this.attributes = Object.freeze({ [ATTR.SCOPE]: scope });
  }

  /** The series of an outcome (and tier), made on first use. */
  outcome(kind: OutcomeKind, tier: string | undefined): OutcomeCount {
    let byKind = this.#outcomes.get(tier ?? '');
    if (!byKind) {
      byKind = new Map();
      this.#outcomes.set(tier ?? '', byKind);
    }
    let series = byKind.get(kind);
    if (!series) {
      const attributes: Attributes = { [ATTR.OUTCOME]: kind, [ATTR.SCOPE]: this.scope };
      if (tier !== undefined) attributes[ATTR.TIER] = tier;
      series = { attributes: Object.freeze(attributes), count: 0 };
      byKind.set(kind, series);
    }
    return series;
  }

  /** Reports every outcome series' count so far (the outcomes counter's collection). */
  observeOutcomes(result: ObservableResult): void {
    for (const byKind of this.#outcomes.values())
      for (const series of byKind.values()) result.observe(series.count, series.attributes);
  }
}

/** The instruments of {@link METRIC} on one meter, and the per-scope counts behind the observable ones. */
export class EngineMetrics {
  readonly #messageDuration: Histogram;
  readonly #storeDuration: Histogram;
  readonly #cacheDuration: Histogram;
  readonly #scopes = new Map<string, ScopeMetrics>();
  /** A successful call's attributes, one object per operation. */
  readonly #operations = new Map<string, Attributes>();

  constructor(meter: Meter) {
    this.#messageDuration = meter.createHistogram(METRIC.MESSAGE_DURATION, {
      description: "A message's time in the engine, from its key to its outcome",
      unit: 's',
      advice: { explicitBucketBoundaries: MESSAGE_BUCKETS },
    });
    this.#storeDuration = meter.createHistogram(METRIC.STORE_DURATION, {
      description: 'Duration of each idempotency store call',
      unit: 's',
      advice: { explicitBucketBoundaries: CALL_BUCKETS },
    });
    this.#cacheDuration = meter.createHistogram(METRIC.CACHE_DURATION, {
      description: 'Duration of each idempotency cache call',
      unit: 's',
      advice: { explicitBucketBoundaries: CALL_BUCKETS },
    });
    meter
      .createObservableCounter(METRIC.OUTCOMES, {
        description: 'Messages by outcome (processed, takeover, duplicate, inFlight, conflict, failed)',
        unit: '{message}',
      })
      .addCallback((result) => {
        for (const scope of this.#scopes.values()) scope.observeOutcomes(result);
      });
    meter
      .createObservableUpDownCounter(METRIC.MESSAGES_ACTIVE, {
        description: 'Messages in the engine now (from key to outcome)',
        unit: '{message}',
      })
      .addCallback((result) => {
        for (const scope of this.#scopes.values()) result.observe(scope.active, scope.attributes);
      });
  }

  /** The metrics of one scope, made on first use. */
  scope(scope: string): ScopeMetrics {
    let metrics = this.#scopes.get(scope);
    if (!metrics) {
      metrics = new ScopeMetrics(scope);
      this.#scopes.set(scope, metrics);
    }
    return metrics;
  }

  /** A message of `scope` ended in `kind` (and `tier`) after `seconds`. */
  outcome(scope: ScopeMetrics, kind: OutcomeKind, tier: string | undefined, seconds: number): void {
    const series = scope.outcome(kind, tier);
    series.count++;
    scope.active--;
    this.#messageDuration.record(seconds, series.attributes);
  }

  /** A store or cache call ended. */
  step(timing: StepTiming, errorType: string | undefined): void {
    const histogram = timing.target === 'store' ? this.#storeDuration : this.#cacheDuration;
    histogram.record(timing.durationMs / 1000, this.#operationAttributes(timing.operation, errorType));
  }

  #operationAttributes(operation: string, errorType: string | undefined): Attributes {
    if (errorType !== undefined) return { [ATTR.OPERATION]: operation, [SEMCONV.ERROR_TYPE]: errorType };
    let attributes = this.#operations.get(operation);
    if (!attributes) {
      attributes = Object.freeze({ [ATTR.OPERATION]: operation });
      this.#operations.set(operation, attributes);
    }
    return attributes;
  }
}
