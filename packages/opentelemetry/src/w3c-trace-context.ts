/**
 * W3C Trace Context in message properties: `traceparent` and `tracestate`, the property names the
 * publisher helpers write and the consumers read, whatever the broker. A propagator of the API's shape,
 * so that another (`propagation`, the global one) can stand in for it.
 */
import {
  type Context,
  createTraceState,
  isSpanContextValid,
  type SpanContext,
  type TextMapGetter,
  type TextMapPropagator,
  type TextMapSetter,
  trace,
} from '@opentelemetry/api';

const TRACEPARENT = 'traceparent';
const TRACESTATE = 'tracestate';
const INVALID_TRACE_ID = '0'.repeat(32);
const INVALID_SPAN_ID = '0'.repeat(16);
const VERSION = '00';
// version-traceid-parentid-flags; a later version may append fields, version ff is forbidden.
const TRACEPARENT_FORMAT = /^\s?((?!ff)[\da-f]{2})-([\da-f]{32})-([\da-f]{16})-([\da-f]{2})(-.*)?\s?$/;

// What nearly every message carries: version 00, nothing around it. Tested without captures, then cut.
const VERSION_00 = /^00-[\da-f]{32}-[\da-f]{16}-[\da-f]{2}$/;

/** Reads a `traceparent` value; `undefined` when it is not a valid one. */
export function parseTraceparent(value: string): SpanContext | undefined {
  if (value.length === 55 && VERSION_00.test(value)) {
    const traceId = value.slice(3, 35);
    const spanId = value.slice(36, 52);
    if (traceId === INVALID_TRACE_ID || spanId === INVALID_SPAN_ID) return undefined;
    return { traceId, spanId, traceFlags: Number.parseInt(value.slice(53), 16), isRemote: true };
  }
  const match = TRACEPARENT_FORMAT.exec(value);
  if (!match) return undefined;
  const [, version, traceId, spanId, flags, rest] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
    string?,
  ];
  // Version 00 has exactly four fields.
  if (version === VERSION && rest) return undefined;
  // The format has checked the hex; all zeros is the one invalid id left.
  if (traceId === INVALID_TRACE_ID || spanId === INVALID_SPAN_ID) return undefined;
  return { traceId, spanId, traceFlags: Number.parseInt(flags, 16), isRemote: true };
}

/**
 * The span context a message's properties carry (`traceparent`, `tracestate`); `undefined` when they
 * carry none or an invalid one. What {@link w3cTraceContext}'s `extract` reads, without a context.
 */
export function readTraceContext(properties: Readonly<Record<string, unknown>>): SpanContext | undefined {
  const parent = first(properties[TRACEPARENT]);
  const span = typeof parent === 'string' ? parseTraceparent(parent) : undefined;
  if (!span) return undefined;
  const state = properties[TRACESTATE];
  const raw = Array.isArray(state) ? state.join(',') : state;
  return typeof raw === 'string' && raw !== '' ? { ...span, traceState: createTraceState(raw) } : span;
}

/** The `traceparent` value of a span context. */
export function formatTraceparent(context: SpanContext): string {
  const flags = (context.traceFlags & 0xff).toString(16).padStart(2, '0');
  return `${VERSION}-${context.traceId}-${context.spanId}-${flags}`;
}

/** The W3C Trace Context propagator over message properties (`traceparent`, `tracestate`). */
export const w3cTraceContext: TextMapPropagator = {
  inject(context: Context, carrier: unknown, setter: TextMapSetter): void {
    const span = trace.getSpanContext(context);
    if (!span || !isSpanContextValid(span)) return;
    setter.set(carrier, TRACEPARENT, formatTraceparent(span));
    const state = span.traceState?.serialize();
    if (state) setter.set(carrier, TRACESTATE, state);
  },

  extract(context: Context, carrier: unknown, getter: TextMapGetter): Context {
    const properties = {
      [TRACEPARENT]: getter.get(carrier, TRACEPARENT),
      [TRACESTATE]: getter.get(carrier, TRACESTATE),
    };
    const span = readTraceContext(properties);
    return span ? trace.setSpanContext(context, span) : context;
  },

  fields(): string[] {
    return [TRACEPARENT, TRACESTATE];
  },
};

function first(value: unknown): unknown {
  return Array.isArray(value) ? value[0] : value;
}
