/** A row of the token table and its mapping to the port's {@link IdempotencyRecord}. */
import type { IdempotencyRecord, RecordStatus } from '@idempotent-mq/core';

/** The row as drivers return it: BIGINTs may come back as strings (pg), keys as bytes (MySQL). */
export interface TokenRow {
  readonly id: number | string;
  readonly scope: unknown;
  readonly key: unknown;
  readonly status: RecordStatus;
  readonly owner: string;
  readonly fence: number | string;
  readonly lease_expires_at: number | string | null;
  readonly fingerprint: string | null;
  readonly result: string | null;
  readonly created_at: number | string;
  readonly completed_at: number | string | null;
  readonly expires_at: number | string | null;
}

/**
 * Every column of {@link TokenRow}, in the migration's order: what the start-up check requires of the
 * table, and what statements that name their result return (a prepared statement's plan must keep its
 * result's shape, which `RETURNING *` would change the day a column is added).
 */
export const ROW_COLUMNS: readonly (keyof TokenRow)[] = [
  'id',
  'scope',
  'key',
  'status',
  'owner',
  'fence',
  'lease_expires_at',
  'fingerprint',
  'result',
  'created_at',
  'completed_at',
  'expires_at',
];

export const STATUS_IN_PROGRESS: RecordStatus = 'inProgress';
export const STATUS_COMPLETED: RecordStatus = 'completed';

/**
 * A fresh claim's row as SQL: its columns and, per column, a value expression (`?` for a binding, or SQL
 * such as the database clock). It depends only on the table and the kind of claim, so each dialect
 * builds its statements from it once per store, and a claim only supplies bindings: building them with
 * knex's query builder and `raw()` pieces for every claim took about three times the client CPU.
 */
export interface RowTemplate {
  readonly table: string;
  readonly columns: readonly string[];
  readonly values: readonly string[];
}

/** One claim's row: its template, the bindings of the template's `?`s in order, and its token and owner as bound. */
export interface NewRow {
  readonly template: RowTemplate;
  readonly bindings: readonly (string | Buffer | number | null)[];
  readonly scope: string | Buffer;
  readonly key: string | Buffer;
  readonly owner: string;
}

/**
 * The row of a new claim: in progress under a lease, or completed at once when it is made inside the
 * transaction that will complete it (nobody sees it before the commit). Bindings: scope, key, owner,
 * fingerprint, then the lease (in progress) or the retention (completed), in milliseconds.
 */
export function claimTemplate(table: string, nowMs: string, completed: boolean): RowTemplate {
  const values: Record<string, string> = {
    scope: '?',
    key: '?',
    owner: '?',
    fingerprint: '?',
    fence: '1',
    result: 'null',
    created_at: nowMs,
    ...claimStateSql(nowMs, completed),
  };
  return { table, columns: Object.keys(values), values: Object.values(values) };
}

/**
 * The status columns of a claim as SQL, fresh or taking over a row: in progress under a lease, or
 * completed at once. Exactly one of them holds a `?`: the lease or the retention, in milliseconds.
 */
export function claimStateSql(nowMs: string, completed: boolean): Record<string, string> {
  const plus = `(${nowMs} + ?)`;
  // The statuses are constants of this module, never a value from a message.
  return completed
    ? { status: `'${STATUS_COMPLETED}'`, lease_expires_at: 'null', completed_at: nowMs, expires_at: plus }
    : { status: `'${STATUS_IN_PROGRESS}'`, lease_expires_at: plus, completed_at: 'null', expires_at: 'null' };
}

export function toRecord(row: TokenRow, readText: (value: unknown) => string): IdempotencyRecord {
  return {
    scope: readText(row.scope),
    key: readText(row.key),
    status: row.status,
    owner: row.owner,
    fence: Number(row.fence),
    leaseExpiresAt: optionalNumber(row.lease_expires_at),
    fingerprint: row.fingerprint ?? undefined,
    result: row.result ?? undefined,
    createdAt: Number(row.created_at),
    completedAt: optionalNumber(row.completed_at),
    expiresAt: optionalNumber(row.expires_at),
  };
}

/** Whether a row no longer stands at `nowMs` (the database's time): an expired lease or retention. */
export function isExpired(row: TokenRow, nowMs: number): boolean {
  const until = row.status === STATUS_IN_PROGRESS ? row.lease_expires_at : row.expires_at;
  return until !== null && Number(until) <= nowMs;
}

function optionalNumber(value: number | string | null): number | undefined {
  return value === null ? undefined : Number(value);
}
