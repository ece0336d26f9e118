/**
 * Writes records the way the store did before format 2 (a hash per token), by running its scripts of
 * that version, kept verbatim in `format-1/`: for the tests that the current store reads and handles them.
 */
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

const DIR = new URL('./format-1/', import.meta.url);
const include = readFileSync(new URL('record.lua', DIR), 'utf8');
const script = (name: string) =>
  readFileSync(new URL(`${name}.lua`, DIR), 'utf8').replace('-- @include record', () => include);
const CLAIM = script('claim');
const COMPLETE = script('complete');

/** The format-1 claim: owner, lease, fingerprint, as `claim.lua` of that version took them. */
export async function claimV1(
  client: Redis,
  key: string,
  token: { scope: string; key: string },
  owner: string,
  leaseMs: number,
  fingerprint?: string,
): Promise<unknown> {
  return client.eval(
    CLAIM,
    1,
    key,
    owner,
    leaseMs,
    3_600_000,
    fingerprint === undefined ? '0' : '1',
    fingerprint ?? '',
    token.scope,
    token.key,
  );
}

/** The format-1 completion; 1 when completed. */
export async function completeV1(
  client: Redis,
  key: string,
  owner: string,
  ttlMs: number,
  result?: string,
): Promise<unknown> {
  return client.eval(COMPLETE, 1, key, owner, ttlMs, 60_000, result === undefined ? '0' : '1', result ?? '');
}
