/** @idempotent-mq/opentelemetry: placeholder until the instrumentation lands. */
export {};
