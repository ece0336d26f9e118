/**
 * The shared local Redis (`REDIS_URL`, default redis://127.0.0.1:6379). Other engineers' tests use it
 * too: everything here writes under a prefix unique to the run and deletes only that prefix.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A key prefix no other run uses. */
export const runPrefix = (label: string) => `imq-test:${label}:${randomUUID()}:`;

/** Connects and waits until ready; a Redis that is not there fails the test (never skips it). */
export async function connect(url = REDIS_URL): Promise<Redis> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2 });
  await client.connect();
  return client;
}

/** Deletes every key under `prefix` (SCAN, never FLUSHDB). */
export async function deletePrefix(client: Redis, prefix: string): Promise<void> {
  const pattern = `${prefix.replace(/[*?[\]\\]/g, (c) => `\\${c}`)}*`;
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await client.unlink(...keys);
  } while (cursor !== '0');
}

export const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
