/**
 * The producer side of trace propagation: publisher helpers write the active trace context (W3C
 * `traceparent` and `tracestate`) into each message's properties, so that the consumer's span links to
 * the producer's. Core knows no tracing library: `@idempotent-mq/opentelemetry` installs the injector;
 * with none installed, properties go out unchanged.
 */

/** Writes the active trace context into a message's properties; leaves them as they are when there is none. */
export type TraceContextInjector = (properties: Record<string, string>) => void;

// Process-wide, as the tracing library's own context and propagators are; a symbol on globalThis, so
// that two copies of this package share one injector.
const SLOT = Symbol.for('idempotent-mq.trace-context-injector');
type Slot = { [SLOT]?: TraceContextInjector };

/** Installs the process's trace context injector (`undefined` removes it). Returns the one it replaces. */
export function setTraceContextInjector(
  injector: TraceContextInjector | undefined,
): TraceContextInjector | undefined {
  const slot = globalThis as Slot;
  const previous = slot[SLOT];
  if (injector) slot[SLOT] = injector;
  else delete slot[SLOT];
  return previous;
}

/**
 * A message's properties with the active trace context written in, for a publisher to send. Returns
 * `properties` itself when no injector is installed or it added nothing; never modifies it. A context
 * the caller set (its own `traceparent`) is kept as given.
 */
export function injectTraceContext(
  properties?: Readonly<Record<string, string>>,
): Readonly<Record<string, string>> | undefined {
  const injector = (globalThis as Slot)[SLOT];
  if (!injector || properties?.traceparent !== undefined) return properties;
  const out: Record<string, string> = { ...properties };
  try {
    injector(out);
  } catch {
    // Tracing must never stop a message from being sent.
    return properties;
  }
  return Object.keys(out).length === Object.keys(properties ?? {}).length ? properties : out;
}
