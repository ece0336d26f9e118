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

export const STATUS_IN_PROGRESS: RecordStatus = 'inProgress';
export const STATUS_COMPLETED: RecordStatus = 'completed';

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
