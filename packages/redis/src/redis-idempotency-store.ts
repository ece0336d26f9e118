/**
 * Redis as the source of truth, for teams without SQL. A first-time message costs two round trips: the
 * claim is a plain `SET … NX PX` (the lease in the key's TTL, fence 1 implied by the key being new), the
 * completion one Lua script (`lua/*.lua`, fenced on the owner). Every other step — a claim that finds
 * the key taken (duplicate, takeover, reclaim), renew, release, reads — is one script. Redis has no
 * transactions to lend a handler, so the engine runs this store in lease mode with keep-alive renewals.
 * Leases and retention are compared against the Redis server's own clock (`TIME`, key TTLs).
 *
 * The guarantee holds only as far as Redis keeps what it acknowledged: see the README on AOF and replicas.
 */
import {
  type ClaimRequest,
  type ClaimResult,
  type CompleteRequest,
  checkOptionsObject,
  type ForgetOptions,
  type ForgetResult,
  type IdempotencyRecord,
  type IdempotencyStore,
  InvalidOptionError,
  type PurgeOptions,
  PurgePacer,
  purgePauseOption,
  type ReadinessCheck,
  type RecordInspection,
  type StatsOptions,
  type StoreStats,
  type StoreStep,
  StoreUnavailableError,
  type TokenRef,
} from '@idempotent-mq/core/adapter';
import { CorruptRecordError, RedisNotReadyError } from './errors.js';
import { RedisKeyLayout } from './key-layout.js';
import { LuaScripts, type ScriptName } from './lua-scripts.js';
import { assertRedisClient, checkRedis } from './redis-check.js';
import { isCluster, isUnavailable, type RedisClient } from './redis-client.js';
import { ServerClock } from './server-clock.js';

/**
 * How far ahead of the latest the server's clock can read a completed record's retention must end for
 * a claim to answer "duplicate" from the value `SET … NX GET` returned, without a script: it covers a
 * step forward of the server's clock since it was last read. Nearer its end, `claim.lua` decides on the
 * server's clock.
 */
export const DUPLICATE_MARGIN_MS = 1_000;

export interface RedisIdempotencyStoreOptions {
  /**
   * Prepended to every key, to share one Redis with other programs. Must not contain `{` or `}`.
   * @defaultValue `'imq:'`
   */
  keyPrefix?: string;
  /**
   * Keys longer than this in UTF-8 are stored under a SHA-256 of the key instead.
   * @defaultValue 512
   */
  maxKeyBytes?: number;
  /**
   * How long an abandoned claim (its owner died) is kept after its lease expired. Within this time a
   * redelivery takes it over with the next fence, and the outcome says `takeover`; after it Redis drops
   * the key and a redelivery claims afresh (fence 1). Either way it runs once more.
   * @defaultValue 3 600 000 (1 hour)
   */
  abandonedClaimTtlMs?: number;
  /**
   * How long after its retention a completed record's key is dropped by Redis itself. Reads treat the
   * record as gone from its `expiresAt` on; meanwhile {@link RedisIdempotencyStore.purgeExpired} may
   * delete it earlier.
   * @defaultValue 60 000
   */
  expiryGraceMs?: number;
  /**
   * How long a claim (or read, or renewal) waits for a client that is not connected — still starting,
   * or reconnecting — before it fails with `StoreUnavailableError` and the broker redelivers later.
   * `0` fails at once. Completions and releases always wait through the client's own retries.
   * @defaultValue 1000
   */
  readyTimeoutMs?: number;
  /**
   * How many characters of the key are copied into the record for people reading Redis (the key name
   * holds the real key or its hash).
   * @defaultValue 256
   */
  readableKeyLength?: number;
}

/** Every option's name, so that a misspelt one (`keyprefix`) is refused with the nearest. */
const STORE_OPTIONS = [
  'keyPrefix',
  'maxKeyBytes',
  'abandonedClaimTtlMs',
  'expiryGraceMs',
  'readyTimeoutMs',
  'readableKeyLength',
];

/** A format-1 record's hash fields; see `lua/includes/record.lua`. */
type Fields = Record<string, string>;

/**
 * The idempotency store on Redis (a node, Sentinel or Cluster), in lease mode: a first claim is a plain
 * `SET … NX`, everything that must compare and write at once is a script. Records of the earlier format
 * (hashes) are read and handled alike.
 */
export class RedisIdempotencyStore implements IdempotencyStore {
  /** Where each token is kept; exposed for operators and tests. */
  readonly layout: RedisKeyLayout;
  private readonly scripts: LuaScripts;
  private readonly abandonedClaimTtlMs: number;
  private readonly expiryGraceMs: number;
  private readonly readableKeyLength: number;
  private readonly readyTimeoutMs: number;
  /** One wait for 'ready' shared by every call that arrives while the client is away. */
  private ready: Promise<void> | undefined;
  /** The latest each node's clock can read, from the times its scripts answered. */
  private readonly serverClock = new ServerClock();
  /** Whether the server takes `SET … NX GET` (Redis 7.0 and later); cleared on the first refusal. */
  private setNxGet = true;

  constructor(
    private readonly client: RedisClient,
    options: RedisIdempotencyStoreOptions = {},
  ) {
    assertRedisClient(client);
    checkOptionsObject(options, STORE_OPTIONS, 'RedisIdempotencyStore');
    this.layout = new RedisKeyLayout(options.keyPrefix ?? 'imq:', options.maxKeyBytes ?? 512);
    this.abandonedClaimTtlMs = integerOption('abandonedClaimTtlMs', options.abandonedClaimTtlMs ?? 3_600_000);
    this.expiryGraceMs = integerOption('expiryGraceMs', options.expiryGraceMs ?? 60_000);
    this.readableKeyLength = integerOption('readableKeyLength', options.readableKeyLength ?? 256);
    if (this.readableKeyLength > 65_536) {
      throw new InvalidOptionError(
        'readableKeyLength',
        'an integer from 0 to 65 536',
        this.readableKeyLength,
      );
    }
    this.readyTimeoutMs = integerOption('readyTimeoutMs', options.readyTimeoutMs ?? 1000);
    this.scripts = new LuaScripts(client);
  }

  /**
   * Checks, before any message is consumed: the client becomes ready (within 2 s) and every master
   * answers PING; each runs Redis 5.0 or later as a master (the store's scripts read TIME before they
   * write); and the store's scripts load there (SCRIPT LOAD) and a script that reads TIME and then
   * writes runs (EVALSHA). A problem fails the check, naming the fix. It also reports AOF being off and
   * degrades on an eviction policy that may drop records. Never throws for a failed check.
   */
  async check(): Promise<readonly ReadinessCheck[]> {
    return checkRedis(this.client, { port: 'store', layout: this.layout, scripts: this.scripts });
  }

  /**
   * A first claim is one `SET key <claim> NX PX lease+abandonedClaimTtlMs GET`: no script runs. Its
   * record (fence 1) then carries this process's clock as `createdAt` and `leaseExpiresAt`, since the
   * server was not asked its time; what is stored is on the Redis clock (the lease is the key's TTL),
   * and `get` and `inspect` read it there. When the key holds a completed record whose retention ends
   * more than {@link DUPLICATE_MARGIN_MS} after the latest the server's clock can read (see
   * {@link ServerClock}), that answers the claim too; anything else under the key is decided by
   * `claim.lua`, one more round trip.
   */
  async claim(request: ClaimRequest): Promise<ClaimResult> {
    const { token, owner } = request;
    const key = this.layout.key('record', token);
    const leaseMs = Math.ceil(request.leaseMs);
    const tail = JSON.stringify([
      owner,
      request.fingerprint ?? null,
      token.scope,
      readable(token.key, this.readableKeyLength),
    ]);
    const standing = await this.firstClaim(
      token,
      key,
      claimValue(leaseMs, this.abandonedClaimTtlMs, tail),
      leaseMs,
    );
    if (standing === true) {
      const now = Date.now();
      return {
        status: 'claimed',
        takeover: false,
        record: {
          scope: token.scope,
          key: token.key,
          status: 'inProgress',
          owner,
          fence: 1,
          leaseExpiresAt: now + leaseMs,
          fingerprint: request.fingerprint,
          createdAt: now,
        },
      };
    }
    if (typeof standing === 'string') {
      const done = completedRecord(token, standing);
      const latest = this.serverClock.latest(this.layout.scopeTag(token.scope));
      if (
        done?.expiresAt !== undefined &&
        latest !== undefined &&
        done.expiresAt - latest > DUPLICATE_MARGIN_MS
      ) {
        return { status: 'exists', record: done };
      }
    }
    const sentAt = performance.now();
    const reply = await this.run('claim', token, [key], {
      failFast: true,
      args: [owner, JSON.stringify(owner), leaseMs, this.abandonedClaimTtlMs, tail],
    });
    const [status, takeover, body, now] = reply as [string, string, unknown, string];
    if (status === 'corrupt') throw new CorruptRecordError(token, key, String(takeover));
    this.serverClock.observe(this.layout.scopeTag(token.scope), Number(now), sentAt);
    const record = toRecord(token, body, key);
    if (status === 'claimed') return { status: 'claimed', record, takeover: takeover === '1' };
    return { status: 'exists', record };
  }

  /**
   * `SET … NX PX … GET`: `true` when the key was free (now claimed); else what stands under it — a
   * string, or undefined when it is not one (a format-1 hash) or the server predates `NX` with `GET`.
   */
  private async firstClaim(
    token: TokenRef,
    key: string,
    value: string,
    leaseMs: number,
  ): Promise<true | string | undefined> {
    const px = leaseMs + this.abandonedClaimTtlMs;
    if (this.setNxGet) {
      try {
        // With GET, null means the key was absent, hence set.
        const old = await this.send('claim', token, true, () =>
          this.client.set(key, value, 'PX', px, 'NX', 'GET'),
        );
        return old === null ? true : old;
      } catch (error) {
        // A hash under the key (format 1), or another type: claim.lua reads it.
        if (error instanceof Error && error.message.startsWith('WRONGTYPE')) return undefined;
        // Redis before 7.0 refuses NX with GET: from now on, SET … NX alone (not tested here: see README).
        if (!(error instanceof Error && /syntax error/i.test(error.message))) throw error;
        this.setNxGet = false;
      }
    }
    const set = await this.send('claim', token, true, () => this.client.set(key, value, 'PX', px, 'NX'));
    return set === 'OK' ? true : undefined;
  }

  async renew(token: TokenRef, owner: string, leaseMs: number): Promise<boolean> {
    const key = this.layout.key('record', token);
    const args = [owner, JSON.stringify(owner), Math.ceil(leaseMs), this.abandonedClaimTtlMs];
    // A renewal that cannot reach Redis is retried by the keep-alive's next tick.
    return (await this.run('renew', token, [key], { failFast: true, args })) === 1;
  }

  async complete(request: CompleteRequest): Promise<boolean> {
    const { token } = request;
    const key = this.layout.key('record', token);
    const args = [
      request.owner,
      JSON.stringify(request.owner),
      Math.ceil(request.ttlMs),
      this.expiryGraceMs,
      request.result === undefined ? '0' : '1',
      request.result ?? '',
    ];
    // The effect has happened: wait through a reconnect (the client's own retries) rather than fail
    // fast, since a lost completion means the message runs again once the lease expires.
    const sentAt = performance.now();
    const [done, now] = (await this.run('complete', token, [key], { failFast: false, args })) as [
      number,
      string,
    ];
    this.serverClock.observe(this.layout.scopeTag(token.scope), Number(now), sentAt);
    return done === 1;
  }

  async release(token: TokenRef, owner: string): Promise<boolean> {
    const key = this.layout.key('record', token);
    const args = [owner, JSON.stringify(owner)];
    return (await this.run('release', token, [key], { failFast: false, args })) === 1;
  }

  async get(token: TokenRef): Promise<IdempotencyRecord | undefined> {
    const [record] = await this.getMany([token]);
    return record;
  }

  async getMany(tokens: readonly TokenRef[]): Promise<(IdempotencyRecord | undefined)[]> {
    if (tokens.length === 0) return [];
    const keys = tokens.map((token) => this.layout.key('record', token));
    const answers = new Array<unknown>(tokens.length);
    const groups = this.client.isCluster ? this.layout.groupBySlot(tokens) : [tokens.map((_, i) => i)];
    await Promise.all(
      groups.map(async (indexes) => {
        const first = tokens[indexes[0] as number] as TokenRef;
        const reply = (await this.run(
          'read',
          first,
          indexes.map((i) => keys[i] as string),
          { failFast: true, args: [] },
        )) as unknown[];
        indexes.forEach((at, n) => {
          answers[at] = reply[n];
        });
      }),
    );
    return tokens.map((token, i) => {
      const [kind, body] = (answers[i] ?? []) as [string?, unknown?];
      if (kind === undefined) return undefined;
      if (kind === 'corrupt') throw new CorruptRecordError(token, keys[i] as string, String(body));
      return toRecord(token, body, keys[i] as string);
    });
  }

  /**
   * Deletes completed records past their retention, in batches of at most `batchSize` keys. Redis drops
   * them by itself `expiryGraceMs` after their retention anyway, so this is a tidy-up, not a necessity.
   * It SCANs only this store's own key pattern (on a cluster, every master) and deletes only records it
   * wrote, so it is safe on a Redis shared with other programs.
   */
  async purgeExpired(options: PurgeOptions = {}): Promise<number> {
    const batchSize = options.batchSize ?? 1000;
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 100_000) {
      throw new InvalidOptionError('batchSize', 'an integer from 1 to 100 000', batchSize);
    }
    const pacer = new PurgePacer(purgePauseOption('pause', options.pause ?? 0));
    const pattern = this.layout.pattern('record');
    const nodes = isCluster(this.client) ? this.client.nodes('master') : [this.client];
    let purged = 0;
    for (const node of nodes) {
      let cursor = '0';
      do {
        // COUNT is work per SCAN call, not matches: on a shared Redis most keys are not ours.
        const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', Math.max(batchSize, 1000));
        cursor = next;
        for (let at = 0; at < keys.length; at += batchSize) {
          await pacer.next();
          const batch = keys.slice(at, at + batchSize);
          // Keys of one SCAN page may sit in different slots: one script call per key, sent together.
          const deleted = await Promise.all(batch.map((key) => this.scripts.run('purge', [key], [])));
          purged += deleted.filter((n) => n === 1).length;
        }
      } while (cursor !== '0');
    }
    return purged;
  }

  /**
   * The token's record as stored, expired or not (until Redis drops the key), with the time of the node
   * that holds it. Something under the key that is not a record this store wrote is reported as
   * `unreadable`, with the reason.
   */
  async inspect(token: TokenRef): Promise<RecordInspection> {
    const key = this.layout.key('record', token);
    const reply = await this.run('inspect', token, [key], { failFast: true, args: [] });
    const [now, kind, body] = reply as [string, string, unknown];
    const location = `Redis key ${key}`;
    if (kind === 'corrupt') return { now: Number(now), location, unreadable: `the key ${String(body)}` };
    return { record: kind === 'record' ? toRecord(token, body, key) : undefined, now: Number(now), location };
  }

  /**
   * Deletes the token's record whatever its owner, a live claim only with `force`, in one script (so a
   * claim renewed or taken over meanwhile is never deleted without `force`). Something under the key that
   * is not a record of ours is deleted only with `force`; without it, {@link CorruptRecordError}.
   */
  async forget(token: TokenRef, options: ForgetOptions = {}): Promise<ForgetResult> {
    const key = this.layout.key('record', token);
    const args = [options.force ? '1' : '0', options.dryRun ? '1' : '0'];
    const [kind, body] = (await this.run('forget', token, [key], { failFast: true, args })) as [
      string,
      unknown,
    ];
    switch (kind) {
      case 'absent':
        return { outcome: 'absent' };
      case 'refused':
        return { outcome: 'refused', reason: 'liveClaim', record: toRecord(token, body, key) };
      case 'forgotten':
        return { outcome: 'forgotten', record: toRecord(token, body, key) };
      case 'unreadable':
        return { outcome: 'forgotten' };
      default:
        throw new CorruptRecordError(token, key, String(body));
    }
  }

  /**
   * Counts this store's records (of one scope) on the Redis clock: SCANs its own key pattern (on a
   * cluster, every master) and counts each page in one script call (per slot). It reads every record of
   * the pattern: run it from a shell, not per message.
   */
  async stats(options: StatsOptions = {}): Promise<StoreStats> {
    const within = options.expiringWithinMs ?? 86_400_000;
    if (!Number.isInteger(within) || within < 0) {
      throw new InvalidOptionError('expiringWithinMs', 'a non-negative integer (milliseconds)', within);
    }
    const { scope } = options;
    const all = this.layout.pattern('record');
    // The prefix holds no `{`, so the one `{…}` of the pattern is the scope tag's.
    const pattern = scope === undefined ? all : all.replace(/\{\?+\}/, `{${this.layout.scopeTag(scope)}}`);
    const totals = {
      inProgress: 0,
      completed: 0,
      lapsedClaims: 0,
      expired: 0,
      expiringSoon: 0,
      unreadable: 0,
    };
    let now: number | undefined;
    let oldest: IdempotencyRecord | undefined;
    let oldestInProgress: IdempotencyRecord | undefined;
    const count = async (keys: readonly string[]): Promise<void> => {
      const reply = (await this.run('stats', undefined, keys, {
        failFast: true,
        args: [within],
      })) as unknown[];
      const [at, ...counts] = reply.slice(0, 7).map(Number) as number[];
      now = Math.max(now ?? 0, at as number);
      const [inProgress, completed, lapsed, expired, soon, unreadable] = counts as number[];
      totals.inProgress += inProgress as number;
      totals.completed += completed as number;
      totals.lapsedClaims += lapsed as number;
      totals.expired += expired as number;
      totals.expiringSoon += soon as number;
      totals.unreadable += unreadable as number;
      const first = recordAt(reply[7], reply[8]);
      if (first && (!oldest || first.createdAt < oldest.createdAt)) oldest = first;
      const claim = recordAt(reply[9], reply[10]);
      if (claim && (!oldestInProgress || claim.createdAt < oldestInProgress.createdAt)) {
        oldestInProgress = claim;
      }
    };
    const nodes = isCluster(this.client) ? this.client.nodes('master') : [this.client];
    for (const node of nodes) {
      let cursor = '0';
      do {
        let keys: string[];
        try {
          [cursor, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
        } catch (error) {
          if (isUnavailable(error)) throw new StoreUnavailableError('read', undefined, error);
          throw error;
        }
        if (keys.length === 0) continue;
        // A page may span slots on a cluster: one call per scope tag (a tag is one slot).
        await Promise.all(isCluster(this.client) ? bySlotTag(keys).map(count) : [count(keys)]);
      } while (cursor !== '0');
    }
    // Nothing to count: the script still tells the time.
    if (now === undefined) await count([]);
    return {
      now: now as number,
      ...(scope === undefined ? {} : { scope }),
      inProgress: totals.inProgress,
      completed: totals.completed,
      lapsedClaims: totals.lapsedClaims,
      expired: totals.expired,
      expiringWithinMs: within,
      expiringSoon: totals.expiringSoon,
      oldest,
      oldestInProgress,
      unreadable: totals.unreadable,
    };
  }

  /** Resolves when the client is ready or after `readyTimeoutMs`, whichever comes first. */
  private untilReady(): Promise<void> {
    const client = this.client;
    // A lazyConnect client connects on its first command, and we send none until it is connected.
    if (client.status === 'wait') client.connect().catch(() => {});
    if (this.readyTimeoutMs === 0) return Promise.resolve();
    if (!this.ready) {
      this.ready = new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          client.off('ready', done);
          this.ready = undefined;
          resolve();
        };
        const timer = setTimeout(done, this.readyTimeoutMs);
        timer.unref();
        client.once('ready', done);
      });
    }
    return this.ready;
  }

  private run(
    name: ScriptName,
    token: TokenRef | undefined,
    keys: readonly string[],
    { failFast, args }: { failFast: boolean; args: readonly (string | number)[] },
  ): Promise<unknown> {
    return this.send(name as StoreStep, token, failFast, () => this.scripts.run(name, keys, args));
  }

  /** Sends one command (or script call), failing fast on a client that is away when asked to. */
  private async send<T>(
    step: StoreStep,
    token: TokenRef | undefined,
    failFast: boolean,
    command: () => Promise<T>,
  ): Promise<T> {
    // Nothing has happened yet: better that the broker redelivers later than that the copy waits long.
    if (failFast && this.client.status !== 'ready') {
      await this.untilReady();
      // Read afresh: the wait above may have changed it.
      const status: string = this.client.status;
      if (status !== 'ready') throw new StoreUnavailableError(step, token, new RedisNotReadyError(status));
    }
    try {
      return await command();
    } catch (error) {
      if (isUnavailable(error)) throw new StoreUnavailableError(step, token, error);
      throw error;
    }
  }
}

/** Keys grouped by their `{scope tag}`: the keys of one group share a cluster slot. */
function bySlotTag(keys: readonly string[]): string[][] {
  const groups = new Map<string, string[]>();
  for (const key of keys) {
    const tag = key.slice(key.indexOf('{'), key.indexOf('}') + 1);
    const group = groups.get(tag);
    if (group) group.push(key);
    else groups.set(tag, [key]);
  }
  return [...groups.values()];
}

/**
 * A record found by its Redis key (`stats`), whose token is known only from the key and the record: the
 * key part after `=` is the key itself; a hashed key part (`#…`) leaves the record's readable copy.
 */
function recordAt(redisKey: unknown, body: unknown): IdempotencyRecord | undefined {
  if (typeof redisKey !== 'string' || redisKey === '') return undefined;
  const { scope, key: readableKey } = peopleCopy(body);
  // `<prefix>{<tag>}:s:<key part>`: the prefix holds no braces.
  const part = redisKey.slice(redisKey.indexOf('}') + 4);
  const key = part.startsWith('=') ? part.slice(1) : (readableKey ?? part);
  return toRecord({ scope: scope ?? '', key }, body, redisKey);
}

/** The scope and key a record keeps for people reading Redis. */
function peopleCopy(body: unknown): { scope?: string; key?: string } {
  const reply = body as unknown[];
  if (reply[0] === '2') {
    try {
      const [, , scope, key] = JSON.parse(reply[7] as string) as [unknown, unknown, string, string];
      return { scope, key };
    } catch {
      return {}; // toRecord says what is wrong with it
    }
  }
  const flat = reply[1] as string[];
  const field = (name: string): string | undefined => {
    for (let i = 0; i + 1 < flat.length; i += 2) if (flat[i] === name) return flat[i + 1];
    return undefined;
  };
  return { scope: field('sc'), key: field('k') };
}

/**
 * A format-2 completed record from its stored value (what `SET … NX GET` returned), or undefined when the
 * value is anything else (a claim, format 1, foreign): `claim.lua` then decides.
 */
function completedRecord(token: TokenRef, value: string): IdempotencyRecord | undefined {
  if (!value.startsWith('imq2|c|')) return undefined;
  const parts: string[] = [];
  let at = 7;
  for (let n = 0; n < 4; n++) {
    const bar = value.indexOf('|', at);
    if (bar < 0) return undefined;
    parts.push(value.slice(at, bar));
    at = bar + 1;
  }
  if (!parts.every((part) => /^\d+$/.test(part))) return undefined;
  let tail: unknown;
  try {
    tail = JSON.parse(value.slice(at));
  } catch {
    return undefined;
  }
  if (!Array.isArray(tail) || typeof tail[0] !== 'string') return undefined;
  const [fe, ca, co, ex] = parts.map(Number) as [number, number, number, number];
  return {
    scope: token.scope,
    key: token.key,
    status: 'completed',
    owner: tail[0],
    fence: fe,
    fingerprint: typeof tail[1] === 'string' ? tail[1] : undefined,
    result: typeof tail[4] === 'string' ? tail[4] : undefined,
    createdAt: ca,
    completedAt: co,
    expiresAt: ex,
  };
}

/**
 * A format-2 claim as the client writes it with `SET … NX`: fence 1, created 0 (the scripts derive it
 * from the key's TTL). See `lua/includes/record.lua`.
 */
function claimValue(leaseMs: number, keepMs: number, tail: string): string {
  return `imq2|i|1|${leaseMs}|${keepMs}|0|${tail}`;
}

function integerOption(option: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > 2 ** 31 - 1) {
    throw new InvalidOptionError(option, 'an integer from 0 to 2 147 483 647', value);
  }
  return value;
}

/** The first `length` code points of `key`, for the record's readable copy. */
function readable(key: string, length: number): string {
  if (key.length <= length) return key;
  let out = '';
  let n = 0;
  for (const ch of key) {
    if (n++ >= length) break;
    out += ch;
  }
  return `${out}…`;
}

/** A record as the scripts reply it: `{'1', hash fields}` or `{'2', st, fe, le, ca, co, ex, tail}`. */
function toRecord(token: TokenRef, body: unknown, redisKey = ''): IdempotencyRecord {
  const reply = body as unknown[];
  if (reply[0] === '2') {
    const [, st, fe, le, ca, co, ex, tail] = reply as string[];
    let parsed: unknown;
    try {
      parsed = JSON.parse(tail as string);
    } catch {
      parsed = undefined;
    }
    if (!Array.isArray(parsed) || typeof parsed[0] !== 'string') {
      throw new CorruptRecordError(token, redisKey, 'holds a string that is not an idempotency record');
    }
    const [owner, fingerprint, , , result] = parsed as [string, string | null, string, string, string?];
    const time = (text: string | undefined) => (text ? Number(text) : undefined);
    return {
      scope: token.scope,
      key: token.key,
      status: st === 'c' ? 'completed' : 'inProgress',
      owner,
      fence: Number(fe),
      leaseExpiresAt: time(le),
      fingerprint: fingerprint ?? undefined,
      result,
      createdAt: Number(ca),
      completedAt: time(co),
      expiresAt: time(ex),
    };
  }
  const flat = reply[1] as string[];
  const f: Fields = {};
  for (let i = 0; i + 1 < flat.length; i += 2) f[flat[i] as string] = flat[i + 1] as string;
  const number = (name: string): number | undefined => (f[name] === undefined ? undefined : Number(f[name]));
  return {
    scope: token.scope,
    key: token.key,
    status: f.st === 'c' ? 'completed' : 'inProgress',
    owner: f.ow as string,
    fence: number('fe') as number,
    leaseExpiresAt: number('le'),
    fingerprint: f.fp,
    result: f.rs,
    createdAt: number('ca') as number,
    completedAt: number('co'),
    expiresAt: number('ex'),
  };
}
