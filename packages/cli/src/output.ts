/** What a command answers, and how it reads: one JSON document (`--json`) or lines for people. */
import type { IdempotencyRecord } from '@idempotent-mq/core';
import { cutText } from '@idempotent-mq/core/adapter';
import type { ExitCodeValue } from './exit-codes.js';

/** A command's answer: its exit code, its JSON document and its text. */
export interface CommandResult {
  readonly exitCode: ExitCodeValue;
  /** The document `--json` prints; it always has `command`. */
  readonly json: { readonly command: string } & Record<string, unknown>;
  /** The lines printed without `--json`. */
  readonly text: readonly string[];
  /** Printed on stderr (in both modes) when the exit code is not 0: what happened and what to do. */
  readonly message?: string;
}

/** Where a command writes: the CLI's stdout and stderr. */
export interface Writer {
  write(text: string): unknown;
}

/**
 * How a record stands on the store's clock: `inProgress` (a live claim), `lapsed` (a claim whose lease
 * ran out: the next copy takes it over), `completed`, `expired` (past retention: reads treat it as
 * absent), `absent`.
 */
export type TokenState = 'absent' | 'inProgress' | 'lapsed' | 'completed' | 'expired';

/** The state of `record` at `now` (the store's time). */
export function stateOf(record: IdempotencyRecord | undefined, now: number): TokenState {
  if (!record) return 'absent';
  if (record.status === 'inProgress') {
    return record.leaseExpiresAt !== undefined && record.leaseExpiresAt <= now ? 'lapsed' : 'inProgress';
  }
  return record.expiresAt !== undefined && record.expiresAt <= now ? 'expired' : 'completed';
}

/** A record in a JSON document: as stored (epoch ms), with the time left on the store's clock. */
export function recordJson(record: IdempotencyRecord, now: number): Record<string, unknown> {
  return {
    scope: record.scope,
    key: record.key,
    status: record.status,
    state: stateOf(record, now),
    owner: record.owner,
    fence: record.fence,
    createdAt: record.createdAt,
    leaseExpiresAt: record.leaseExpiresAt ?? null,
    leaseLeftMs: record.leaseExpiresAt === undefined ? null : record.leaseExpiresAt - now,
    completedAt: record.completedAt ?? null,
    expiresAt: record.expiresAt ?? null,
    expiresInMs: record.expiresAt === undefined ? null : record.expiresAt - now,
    fingerprint: record.fingerprint ?? null,
    result: record.result ?? null,
  };
}

/** A record's fields as aligned lines for people. */
export function recordLines(record: IdempotencyRecord, now: number, indent = '  '): string[] {
  const rows: [string, string][] = [
    ['owner', record.owner || '(none)'],
    ['fence', String(record.fence)],
    ['created', when(record.createdAt, now)],
  ];
  if (record.leaseExpiresAt !== undefined) rows.push(['lease', until(record.leaseExpiresAt, now, 'left')]);
  if (record.completedAt !== undefined) rows.push(['completed', when(record.completedAt, now)]);
  if (record.expiresAt !== undefined) rows.push(['expires', until(record.expiresAt, now, 'from now')]);
  rows.push(['fingerprint', record.fingerprint ?? '(none)']);
  rows.push(['result', record.result === undefined ? '(none)' : cutText(record.result, 200)]);
  return table(rows, indent);
}

/** `label  value` rows with the labels padded to one width. */
export function table(rows: readonly (readonly [string, string])[], indent = ''): string[] {
  const width = Math.max(0, ...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${indent}${label.padEnd(width)}  ${value}`);
}

/** An instant and how long ago (or ahead) it is: `2026-12-01T21:50:02.123Z (3m 2s ago)`. */
export function when(at: number, now: number): string {
  const delta = now - at;
  return `${iso(at)} (${delta >= 0 ? `${duration(delta)} ago` : `in ${duration(-delta)}`})`;
}

/** A deadline and the time left to it, or how long it has passed. */
export function until(at: number, now: number, left: string): string {
  const delta = at - now;
  return `${iso(at)} (${delta > 0 ? `${duration(delta)} ${left}` : `passed ${duration(-delta)} ago`})`;
}

function iso(at: number): string {
  const date = new Date(at);
  return Number.isNaN(date.getTime()) ? String(at) : date.toISOString();
}

/** A duration for people: `850 ms`, `42s`, `3m 2s`, `6d 23h`. */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const units: [string, number][] = [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ];
  const parts: string[] = [];
  let rest = Math.floor(ms);
  for (const [unit, size] of units) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n > 0 || parts.length > 0) parts.push(`${n}${unit}`);
    if (parts.length === 2) break;
  }
  return parts.filter((p) => !p.startsWith('0')).join(' ') || '0s';
}

/** Parses `--within`-style durations: `250`, `250ms`, `30s`, `15m`, `24h`, `7d`; undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/i.exec(text.trim());
  if (!match) return undefined;
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
    (match[2] ?? 'ms').toLowerCase() as 'ms'
  ];
  const ms = Math.round(Number(match[1]) * factor);
  return Number.isSafeInteger(ms) ? ms : undefined;
}
