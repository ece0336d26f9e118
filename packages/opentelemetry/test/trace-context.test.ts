import { injectTraceContext, setTraceContextInjector } from '@idempotent-mq/core/adapter';
import { installTraceContextInjector, w3cTraceContext } from '@idempotent-mq/opentelemetry';
import {
  context,
  createTraceState,
  defaultTextMapGetter,
  defaultTextMapSetter,
  ROOT_CONTEXT,
  trace,
} from '@opentelemetry/api';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { formatTraceparent, parseTraceparent } from '../src/w3c-trace-context.js';
import { useContextManager } from './support.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_ID = '00f067aa0ba902b7';
const SAMPLED = `00-${TRACE_ID}-${SPAN_ID}-01`;

let removeContextManager: () => void;
beforeAll(() => {
  removeContextManager = useContextManager();
});
afterAll(() => removeContextManager());
afterEach(() => {
  setTraceContextInjector(undefined);
});

/** The active context of a (remote) span with these ids. */
const withSpan = (traceState?: string) =>
  trace.setSpanContext(ROOT_CONTEXT, {
    traceId: TRACE_ID,
    spanId: SPAN_ID,
    traceFlags: 1,
    ...(traceState ? { traceState: createTraceState(traceState) } : {}),
  });

describe('traceparent', () => {
  it('reads and writes the W3C format', () => {
    expect(parseTraceparent(SAMPLED)).toEqual({
      traceId: TRACE_ID,
      spanId: SPAN_ID,
      traceFlags: 1,
      isRemote: true,
    });
    expect(formatTraceparent({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 0 })).toBe(
      `00-${TRACE_ID}-${SPAN_ID}-00`,
    );
    // A later version may add fields after the four it shares with 00.
    expect(parseTraceparent(`01-${TRACE_ID}-${SPAN_ID}-01-more`)?.spanId).toBe(SPAN_ID);
    // Version 00 alone (the quick path) and around it (the full format) read the same.
    expect(parseTraceparent(`00-${TRACE_ID}-${SPAN_ID}-ff`)?.traceFlags).toBe(0xff);
    expect(parseTraceparent(` ${SAMPLED}`)).toEqual(parseTraceparent(SAMPLED));
    expect(parseTraceparent(`${SAMPLED} `)).toEqual(parseTraceparent(SAMPLED));
  });

  it('refuses what the format forbids', () => {
    for (const bad of [
      '',
      'garbage',
      `ff-${TRACE_ID}-${SPAN_ID}-01`, // version ff
      `00-${TRACE_ID}-${SPAN_ID}-01-extra`, // version 00 has four fields
      `00-${'0'.repeat(32)}-${SPAN_ID}-01`, // all-zero trace id
      `00-${TRACE_ID}-${'0'.repeat(16)}-01`, // all-zero span id
      `00-${TRACE_ID.toUpperCase()}-${SPAN_ID}-01`, // upper case
      `00-${TRACE_ID}-${SPAN_ID}-1`,
      `00-${TRACE_ID}-${SPAN_ID}-0g`, // flags not hex, at version 00's own length
      `00-${TRACE_ID.slice(1)}x-${SPAN_ID}-01`,
      `00_${TRACE_ID}-${SPAN_ID}-01`,
    ]) {
      expect(parseTraceparent(bad), bad).toBeUndefined();
    }
  });

  it('travels with tracestate: injected from the active span, extracted as a remote one', () => {
    const carrier: Record<string, string> = {};
    w3cTraceContext.inject(withSpan('vendor=abc,other=1'), carrier, defaultTextMapSetter);
    expect(carrier).toEqual({ traceparent: SAMPLED, tracestate: 'vendor=abc,other=1' });
    const extracted = trace.getSpanContext(
      w3cTraceContext.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter),
    );
    expect(extracted).toMatchObject({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 1, isRemote: true });
    expect(extracted?.traceState?.get('vendor')).toBe('abc');
    expect(w3cTraceContext.extract(ROOT_CONTEXT, { traceparent: 'nope' }, defaultTextMapGetter)).toBe(
      ROOT_CONTEXT,
    );
    expect(w3cTraceContext.fields()).toEqual(['traceparent', 'tracestate']);
  });
});

describe('the publisher hook (injectTraceContext in core)', () => {
  it('adds nothing while no injector is installed', () => {
    const properties = { region: 'eu' };
    expect(context.with(withSpan(), () => injectTraceContext(properties))).toBe(properties);
    expect(injectTraceContext(undefined)).toBeUndefined();
  });

  it('once installed, writes the active span into a copy of the properties; nothing outside a span', () => {
    installTraceContextInjector();
    const properties = { region: 'eu' };
    const sent = context.with(withSpan(), () => injectTraceContext(properties));
    expect(sent).toEqual({ region: 'eu', traceparent: SAMPLED });
    expect(properties).toEqual({ region: 'eu' });
    expect(injectTraceContext(properties)).toBe(properties);
    expect(context.with(withSpan(), () => injectTraceContext())).toEqual({ traceparent: SAMPLED });
  });

  it('keeps a context the caller set, and uninstalls only its own injector', () => {
    const uninstall = installTraceContextInjector();
    const own = { traceparent: `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01` };
    expect(context.with(withSpan(), () => injectTraceContext(own))).toBe(own);
    const later = () => undefined;
    setTraceContextInjector(later);
    uninstall();
    expect(setTraceContextInjector(undefined)).toBe(later);
  });

  it('never stops a send: an injector that throws is ignored', () => {
    setTraceContextInjector(() => {
      throw new Error('broken');
    });
    const properties = { a: '1' };
    expect(injectTraceContext(properties)).toBe(properties);
  });
});
