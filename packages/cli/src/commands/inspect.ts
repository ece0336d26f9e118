/** `inspect <scope> <key...>`: the store's record and the cache's entry of one token, side by side. */
import {
  type CacheInspection,
  cutText,
  type IdempotencyRecord,
  type TokenRef,
} from '@idempotent-mq/core/adapter';
import type { Connections } from '../connections.js';
import { type CommandContext, scopeHint, tokenOf } from '../context.js';
import { ExitCode } from '../exit-codes.js';
import {
  type CommandResult,
  duration,
  recordJson,
  recordLines,
  stateOf,
  type TokenState,
  table,
} from '../output.js';

/** The options of `inspect`. */
export interface InspectOptions {
  /** The key argument is the stored key itself (no canonical join, no hashing). */
  readonly exact?: boolean;
}

/** What the store holds of a token, read through `inspect` when the store has it, else `get`. */
export interface StoreView {
  readonly record?: IdempotencyRecord;
  readonly now: number;
  /** Whether `now` is the store's own clock (false: the store has no `inspect`; this machine's clock). */
  readonly storeClock: boolean;
  readonly location?: string;
  readonly unreadable?: string;
}

/** Reads the token's record (expired ones included where the store can tell). */
export async function readStore(connections: Connections, token: TokenRef): Promise<StoreView> {
  const { store } = connections;
  if (store.inspect) return { ...(await store.inspect(token)), storeClock: true };
  const record = await store.get(token);
  return { ...(record ? { record } : {}), now: Date.now(), storeClock: false };
}

/** Reads the token's cache entry; undefined when there is no cache. */
export async function readCache(
  connections: Connections,
  token: TokenRef,
): Promise<{ entry: CacheInspection | undefined } | undefined> {
  const { cache } = connections;
  if (!cache) return undefined;
  if (cache.inspect) return { entry: await cache.inspect(token) };
  const value = await cache.get(token);
  return { entry: value ? { value } : undefined };
}

/** Runs `inspect`. */
export async function inspectCommand(
  context: CommandContext,
  scope: string,
  keyParts: readonly string[],
  options: InspectOptions,
): Promise<CommandResult> {
  const token = tokenOf(scope, keyParts, options.exact === true, context.config.maxKeyLength);
  const connections = await context.connect();
  const [stored, cached] = await Promise.all([readStore(connections, token), readCache(connections, token)]);
  const state: TokenState | 'unreadable' = stored.unreadable
    ? 'unreadable'
    : stateOf(stored.record, stored.now);
  const entry = cached?.entry;
  const next = nextCopy(state, entry);
  const found = state !== 'absent' || entry !== undefined;

  const json = {
    command: 'inspect',
    token,
    store: {
      description: connections.storeDescription,
      location: stored.location ?? null,
      now: stored.now,
      clock: stored.storeClock ? 'store' : 'local',
      state,
      record: stored.record ? recordJson(stored.record, stored.now) : null,
      ...(stored.unreadable ? { unreadable: stored.unreadable } : {}),
    },
    cache: cached
      ? {
          description: connections.cacheDescription,
          location: entry?.location ?? null,
          state: entry === undefined ? 'absent' : entry.value ? 'completed' : 'unreadable',
          ttlMs: entry?.ttlMs ?? null,
          fingerprint: entry?.value?.fingerprint ?? null,
          result: entry?.value?.result ?? null,
          ...(entry?.invalid ? { invalid: entry.invalid } : {}),
        }
      : null,
    nextCopy: next.outcome,
    explanation: next.why,
  };

  const text = [`token   scope ${token.scope}`, `        key   ${token.key}`, ''];
  const storeWhere =
    stored.record || stored.unreadable
      ? (stored.location ?? connections.storeDescription)
      : connections.storeDescription;
  text.push(`store   ${state}  ${storeWhere}`);
  if (stored.unreadable) text.push(`  ${stored.unreadable}`);
  if (stored.record) text.push(...recordLines(stored.record, stored.now));
  if (!stored.storeClock)
    text.push("  (the store has no inspect(): expired records are not shown; times on this machine's clock)");
  text.push('');
  if (!cached) {
    text.push('cache   none configured');
  } else if (!entry) {
    text.push(`cache   absent  ${connections.cacheDescription}`);
  } else {
    text.push(
      `cache   ${entry.value ? 'completed' : 'unreadable'}  ${entry.location ?? connections.cacheDescription}`,
    );
    const rows: [string, string][] = [];
    if (entry.invalid) rows.push(['invalid', entry.invalid]);
    if (entry.ttlMs !== undefined) rows.push(['expires', `in ${duration(entry.ttlMs)}`]);
    if (entry.value) {
      rows.push(['fingerprint', entry.value.fingerprint ?? '(none)']);
      rows.push(['result', entry.value.result === undefined ? '(none)' : cutText(entry.value.result, 200)]);
    }
    text.push(...table(rows, '  '));
  }
  text.push('', `next copy: ${next.outcome} (${next.why})`);
  const hint = found ? undefined : scopeHint(token.scope);
  if (hint) text.push(hint);
  return {
    exitCode: found ? ExitCode.ok : ExitCode.notFound,
    json: { ...json, ...(hint ? { hint } : {}) },
    text,
  };
}

/** What a copy of the message arriving now would meet, in the engine's words. */
function nextCopy(
  state: TokenState | 'unreadable',
  entry: CacheInspection | undefined,
): { outcome: 'duplicate' | 'inFlight' | 'processed' | 'failed'; why: string } {
  if (entry?.value) {
    const stale = state === 'completed' ? '' : `; the store says ${state}: forget clears both`;
    return { outcome: 'duplicate', why: `answered from the cache${stale}` };
  }
  switch (state) {
    case 'completed':
      return {
        outcome: 'duplicate',
        why: 'the store holds it completed (a conflict if its payload differs)',
      };
    case 'inProgress':
      return { outcome: 'inFlight', why: 'a live claim holds it; the copy is retried later' };
    case 'lapsed':
      return { outcome: 'processed', why: 'the claim lapsed; the copy takes it over and runs the handler' };
    case 'unreadable':
      return {
        outcome: 'failed',
        why: 'claims fail until what stands under the key is deleted (forget --force)',
      };
    default:
      return {
        outcome: 'processed',
        why: `the store holds it ${state}; the copy claims it and runs the handler`,
      };
  }
}
