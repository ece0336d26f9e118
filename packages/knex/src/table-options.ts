/**
 * The table's name and column widths: shared by the migration that creates the table and the store that
 * writes to it, validated once, so that a table name never comes from anything but this check.
 */
import { InvalidOptionError } from '@idempotent-mq/core';

/** Options that describe the table; give the same values to the migration and to the store. */
export interface IdempotencyTableOptions {
  /**
   * The table's name, optionally schema-qualified (`billing.idempotency_tokens`). Letters, digits and
   * underscores, at most 48 characters per part, so that index names derived from it fit every dialect.
   * @defaultValue `'idempotency_tokens'`
   */
  tableName?: string;
  /**
   * Longest key the table holds, in Unicode code points. Keep the engine's `maxKeyLength` at or below it:
   * the engine shortens longer keys to a prefix and a hash before they reach the store.
   * @defaultValue 250 (the engine's default `maxKeyLength`)
   */
  keyLength?: number;
  /**
   * Longest scope the table holds, in Unicode code points.
   * @defaultValue 160
   */
  scopeLength?: number;
}

export interface ResolvedTableOptions {
  readonly tableName: string;
  /** The table part of `tableName`, for index and lock names. */
  readonly baseName: string;
  readonly keyLength: number;
  readonly scopeLength: number;
}

export const DEFAULT_TABLE_NAME = 'idempotency_tokens';

/** One identifier part; no quoting is ever needed, and nothing from a message can reach it. */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,47}$/;

// MySQL's unique index holds at most 3072 bytes: (scope + key) * 4 bytes of utf8mb4 must fit.
const MAX_KEY_LENGTH = 600;
const MAX_SCOPE_LENGTH = 160;

export function resolveTableOptions(options: IdempotencyTableOptions = {}): ResolvedTableOptions {
  const tableName = options.tableName ?? DEFAULT_TABLE_NAME;
  const parts = typeof tableName === 'string' ? tableName.split('.') : [];
  if (parts.length < 1 || parts.length > 2 || !parts.every((p) => IDENTIFIER.test(p))) {
    throw new InvalidOptionError(
      'tableName',
      'an identifier of letters, digits and underscores (at most 48), optionally "schema.table"',
      tableName,
    );
  }
  const keyLength = options.keyLength ?? 250;
  if (!Number.isInteger(keyLength) || keyLength < 16 || keyLength > MAX_KEY_LENGTH) {
    throw new InvalidOptionError('keyLength', `an integer from 16 to ${MAX_KEY_LENGTH}`, keyLength);
  }
  const scopeLength = options.scopeLength ?? MAX_SCOPE_LENGTH;
  if (!Number.isInteger(scopeLength) || scopeLength < 16 || scopeLength > MAX_SCOPE_LENGTH) {
    throw new InvalidOptionError('scopeLength', `an integer from 16 to ${MAX_SCOPE_LENGTH}`, scopeLength);
  }
  return { tableName, baseName: parts[parts.length - 1] as string, keyLength, scopeLength };
}
