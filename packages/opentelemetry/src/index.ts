/**
 * @idempotent-mq/opentelemetry: OpenTelemetry traces and metrics of the idempotency engine. A CONSUMER
 * `process <topic>` span per message, linked to the producer's span through the W3C `traceparent` the
 * publisher helpers write; outcome, store and cache metrics. `@opentelemetry/api` is a peer: the one
 * copy your SDK registers.
 */
export { ATTR, METRIC } from './names.js';
export {
  OpenTelemetryInstrumentation,
  type OpenTelemetryInstrumentationOptions,
} from './opentelemetry-instrumentation.js';
export type { StepMetrics, StepRecording } from './telemetry.js';
export { installTraceContextInjector, type TraceContextInjectorOptions } from './trace-context-injector.js';
export { w3cTraceContext } from './w3c-trace-context.js';
