/**
 * Prometheus metrics from the engine's outcome events, without OpenTelemetry: an outcome listener that
 * counts outcomes and observes durations into the `prom-client` registry the application gives it.
 */
import type { IdempotencyOutcome, OutcomeListener } from '@idempotent-mq/core';
import { Counter, Histogram, type Registry } from 'prom-client';

/** The outcomes counter: the name `@idempotent-mq/opentelemetry`'s gets from a Prometheus exporter. */
export const OUTCOMES_TOTAL = 'idempotent_mq_outcomes_total';
/** The duration histogram, likewise named as the OpenTelemetry package's is in Prometheus. */
export const MESSAGE_DURATION_SECONDS = 'idempotent_mq_message_duration_seconds';

/**
 * An outcome listener feeding `registry` (yours: never prom-client's global default). Bind it to
 * `IDEMPOTENCY_OUTCOME_LISTENER`.
 *
 * - `idempotent_mq_outcomes_total{outcome, tier, scope}`: messages by outcome (`tier` on duplicates);
 * - `idempotent_mq_message_duration_seconds{outcome, tier, scope}`: time in the engine, by the engine's
 *   clock (whole milliseconds with the system clock).
 */
export function prometheusOutcomeListener(registry: Registry): OutcomeListener {
  const labelNames = ['outcome', 'tier', 'scope'] as const;
  const outcomes = new Counter({
    name: OUTCOMES_TOTAL,
    help: 'Messages by idempotency outcome (processed, takeover, duplicate, inFlight, conflict, failed)',
    labelNames,
    registers: [registry],
  });
  const duration = new Histogram({
    name: MESSAGE_DURATION_SECONDS,
    help: "A message's time in the idempotency engine, from its key to its outcome",
    labelNames,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [registry],
  });
  return (outcome: IdempotencyOutcome) => {
    const labels = {
      outcome: outcome.kind,
      scope: outcome.scope,
      ...(outcome.tier ? { tier: outcome.tier } : {}),
    };
    outcomes.inc(labels);
    duration.observe(labels, outcome.durationMs / 1000);
  };
}
