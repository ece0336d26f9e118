/**
 * The producer side: installs into core the injector the publisher helpers call, so that each message
 * they send carries the active span's context (`traceparent`, `tracestate`) in its properties.
 */
import { checkOptionsObject, setTraceContextInjector } from '@idempotent-mq/core/adapter';
import { context, defaultTextMapSetter, type TextMapPropagator } from '@opentelemetry/api';
import { w3cTraceContext } from './w3c-trace-context.js';

/** Options of {@link installTraceContextInjector}. */
export interface TraceContextInjectorOptions {
  /**
   * How the context is written. Pass `propagation` (the API's global propagator) to follow the SDK's
   * choice instead; consumers must then read it the same way.
   * @defaultValue W3C Trace Context (`traceparent`, `tracestate`)
   */
  readonly propagator?: TextMapPropagator;
}

/**
 * Makes the publisher helpers (`RocketMQPublisher.send`, ...) write the active trace context into each
 * message's properties. Process-wide, as the API's own context is. Returns a function that uninstalls it.
 *
 * @example
 * ```ts
 * installTraceContextInjector();
 * await tracer.startActiveSpan('checkout', async (span) => {
 *   await publisher.send({ topic: 'payments', keys: serial, body }); // carries span's traceparent
 *   span.end();
 * });
 * ```
 */
export function installTraceContextInjector(options: TraceContextInjectorOptions = {}): () => void {
  checkOptionsObject(options, ['propagator'], 'installTraceContextInjector');
  const propagator = options.propagator ?? w3cTraceContext;
  const injector = (properties: Record<string, string>) =>
    propagator.inject(context.active(), properties, defaultTextMapSetter);
  setTraceContextInjector(injector);
  // Uninstalls only its own injector, not one installed after it.
  return () => {
    const current = setTraceContextInjector(undefined);
    if (current !== injector) setTraceContextInjector(current);
  };
}
