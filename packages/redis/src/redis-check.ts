/**
 * What the Redis adapters check before the first message: that what was bound is an ioredis client at
 * all (in the constructor), and then that it is connected, every master answers, the server is recent
 * enough for what the adapter sends, and its writes (and, for the store, its scripts) are accepted —
 * probed on the server. The store's problems fail the check; the cache's only degrade it, since the
 * engine works without a cache.
 */
import { InvalidOptionError, type ReadinessCheck } from '@idempotent-mq/core';
import { withTimeout } from '@idempotent-mq/core/adapter';
import type { Cluster, Redis } from 'ioredis';
import type { RedisKeyLayout } from './key-layout.js';
import type { LuaScripts } from './lua-scripts.js';
import { isCluster, type RedisClient } from './redis-client.js';

/** How long the check waits for a client that is still connecting (or reconnecting) to be ready. */
export const CHECK_READY_MS = 2_000;
/** How long one command of the check may take. */
export const CHECK_STEP_MS = 5_000;

/**
 * A client is what both adapters send their commands to; a URL or an options object bound where it
 * belongs would otherwise fail on the first message (`client.once is not a function`).
 */
export function assertRedisClient(client: unknown): asserts client is RedisClient {
  const c = client as Partial<Record<string, unknown>> | null;
  if (
    typeof c === 'object' &&
    c !== null &&
    typeof c.status === 'string' &&
    typeof c.isCluster === 'boolean' &&
    typeof c.evalsha === 'function' &&
    typeof c.pipeline === 'function' &&
    typeof c.once === 'function'
  ) {
    return;
  }
  const ioredis = 'an ioredis client (new Redis(url) or new Cluster(nodes), from ioredis)';
  if (typeof client === 'string') {
    throw new InvalidOptionError(
      'client',
      `${ioredis}: pass new Redis(url), not the URL`,
      withoutPassword(client),
    );
  }
  if (typeof c === 'object' && c !== null && (typeof c.sendCommand === 'function' || 'isOpen' in c)) {
    throw new InvalidOptionError(
      'client',
      `${ioredis}: node-redis clients (createClient) are not supported; pass new Redis(url)`,
      'a node-redis client',
    );
  }
  if (typeof c === 'object' && c !== null && ('host' in c || 'port' in c || 'url' in c)) {
    throw new InvalidOptionError('client', `${ioredis}: pass new Redis(options), not the options`, {
      host: c.host,
      port: c.port,
    });
  }
  throw new InvalidOptionError('client', ioredis, typeof c === 'object' && c !== null ? 'an object' : client);
}

/** A URL as given, with its password (if any) hidden: the message may reach a log. */
function withoutPassword(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*):[^@/]*@/i, '$1:***@');
}

export interface RedisCheckPlan {
  /** The store's problems fail the check; the cache's degrade it. */
  readonly port: 'store' | 'cache';
  readonly layout: RedisKeyLayout;
  /** The store's scripts, loaded on every master by the check. */
  readonly scripts?: LuaScripts;
}

/** What each adapter needs of the server, and why: told in the check's words. */
const FLOOR = {
  store: {
    version: [5, 0, 0],
    why: 'its scripts read TIME before they write, which needs script effects replication (the default from 5.0)',
  },
  cache: { version: [2, 6, 12], why: 'it writes with SET … PX' },
} as const;

/** A script that reads the clock, then writes: what every store script does. */
const PROBE_SCRIPT = "local t = redis.call('TIME') redis.call('SET', KEYS[1], t[1], 'PX', 1000) return 1";

export async function checkRedis(client: RedisClient, plan: RedisCheckPlan): Promise<ReadinessCheck[]> {
  const bad = plan.port === 'store' ? 'failed' : 'degraded';
  const consequence =
    plan.port === 'store'
      ? 'claims fail (StoreUnavailableError) until it is'
      : 'until then every message goes to the store (the cache is skipped)';
  const reachFix = `Is REDIS_URL right, and is Redis up and reachable from here? The client reconnects by itself; ${consequence}.`;

  const ready = await untilReady(client, CHECK_READY_MS);
  if (ready.status !== 'ready') {
    const why = ready.error ? `: ${ready.error}` : '';
    return [
      {
        name: 'reachable',
        status: bad,
        detail: `the ${plan.port}'s Redis client is "${ready.status}", not "ready", after ${CHECK_READY_MS} ms${why}.`,
        fix: reachFix,
      },
    ];
  }
  const masters = isCluster(client) ? mastersOf(client) : [{ key: address(client), node: client }];
  if (masters.length === 0) {
    return [{ name: 'reachable', status: bad, detail: 'the cluster client knows no master.', fix: reachFix }];
  }
  const started = performance.now();
  const answers = await Promise.all(
    masters.map(async ({ key, node }) => {
      // The client dropped the connection of a master it lost (it waits for the cluster to fail over).
      if (!node) return `${key} is not connected (the client lost it)`;
      // A cluster's node connections are made on their first command ("wait"); one that has lost its
      // server is "reconnecting" or has ended: asking it would only wait for the bound.
      if (['close', 'reconnecting', 'end'].includes(node.status)) return `${key} is "${node.status}"`;
      try {
        await within('PING', node.ping());
        return undefined;
      } catch (error) {
        return `${key}: ${message(error)}`;
      }
    }),
  );
  const silent = answers.filter((a): a is string => a !== undefined);
  if (silent.length > 0) {
    const of = isCluster(client) ? `${silent.length} of ${masters.length} masters do not answer: ` : '';
    return [{ name: 'reachable', status: bad, detail: `${of}${silent.join('; ')}.`, fix: reachFix }];
  }
  const nodes = masters.map((master) => master.node as Redis);
  const ms = Math.round(performance.now() - started);
  const checks: ReadinessCheck[] = [
    {
      name: 'reachable',
      status: 'ok',
      detail: isCluster(client)
        ? `all ${nodes.length} masters answered PING (${masters.map((m) => m.key).join(', ')}) in ${ms} ms.`
        : `${address(client as Redis)} answered PING in ${ms} ms.`,
    },
  ];
  checks.push(await serverCheck(nodes, plan, bad));
  checks.push(plan.scripts ? await scriptsCheck(nodes, plan, bad) : await writeCheck(client, plan, bad));
  return checks;
}

async function serverCheck(
  nodes: readonly Redis[],
  plan: RedisCheckPlan,
  bad: 'failed' | 'degraded',
): Promise<ReadinessCheck> {
  const name = 'server';
  const floor = FLOOR[plan.port];
  const infos = await Promise.all(
    nodes.map(async (node) => {
      try {
        return { node, info: parseInfo(await within('INFO', node.info())) };
      } catch (error) {
        return { node, error: message(error) };
      }
    }),
  );
  const problems: string[] = [];
  const notes = new Set<string>();
  const versions = new Set<string>();
  for (const { node, info, error } of infos) {
    if (!info) {
      // Some managed Redis refuse INFO: the scripts' (or writes') probe still tells what the server does.
      notes.add(`INFO is refused on ${address(node)} (${error}), so the version is not known`);
      continue;
    }
    const version = info.get('redis_version') ?? '';
    versions.add(version);
    if (compareVersions(version, floor.version) < 0) {
      problems.push(
        `${address(node)} runs Redis ${version}; the ${plan.port} needs ${floor.version.join('.')}, since ${floor.why}`,
      );
    }
    if (info.get('role') !== undefined && info.get('role') !== 'master') {
      problems.push(`${address(node)} is a replica (role ${info.get('role')}): it refuses writes (READONLY)`);
    }
    if (plan.port === 'store') {
      if (info.get('aof_enabled') === '0') {
        notes.add(
          'appendonly is off, so a restart forgets the records written since the last snapshot (see Durability)',
        );
      }
      const policy = info.get('maxmemory_policy');
      if (Number(info.get('maxmemory') ?? 0) > 0 && policy !== undefined && policy !== 'noeviction') {
        problems.push(
          `${address(node)} evicts keys under memory pressure (maxmemory-policy ${policy}), so a record may go ` +
            'before its retention and its message run again',
        );
      }
    }
  }
  const noted = notes.size > 0 ? `; ${[...notes].join('; ')}` : '';
  if (problems.length > 0) {
    const eviction = problems.every((p) => p.includes('maxmemory-policy'));
    return {
      name,
      // Eviction loses records under pressure, not at once: the store works, with a weaker guarantee.
      status: eviction ? 'degraded' : bad,
      detail: `${problems.join('; ')}${noted}.`,
      fix: eviction
        ? "Set maxmemory-policy noeviction on the store's Redis (our keys carry their own TTLs)."
        : `Point the ${plan.port} at a master running Redis ${floor.version.join('.')} or later.`,
    };
  }
  const running = versions.size > 0 ? `Redis ${[...versions].join(', ')}` : 'Redis';
  return { name, status: 'ok', detail: `${running}, master${nodes.length > 1 ? 's' : ''}${noted}.` };
}

/** The store's scripts loaded on every master, then a script that reads TIME and writes, run by SHA. */
async function scriptsCheck(
  nodes: readonly Redis[],
  plan: RedisCheckPlan,
  bad: 'failed' | 'degraded',
): Promise<ReadinessCheck> {
  const name = 'scripts';
  const scripts = plan.scripts as LuaScripts;
  const fix =
    'The store runs each step as a Lua script (EVALSHA) that reads TIME and writes: let its user run ' +
    'scripts and write (ACL +@scripting +@write), and point it at a master, not a replica or a proxy that ' +
    'refuses scripting.';
  try {
    await Promise.all(nodes.map((node) => within('SCRIPT LOAD', scripts.loadOn(node, PROBE_SCRIPT))));
  } catch (error) {
    return { name, status: bad, detail: `SCRIPT LOAD was refused: ${message(error)}.`, fix };
  }
  try {
    await within('EVALSHA', scripts.runSource(PROBE_SCRIPT, [probeKey(plan.layout)]));
  } catch (error) {
    return {
      name,
      status: bad,
      detail: `a script that reads TIME and then writes was refused: ${message(error)}.`,
      fix,
    };
  }
  return {
    name,
    status: 'ok',
    detail:
      `the store's ${scripts.count} scripts load on ${nodes.length > 1 ? `all ${nodes.length} masters` : 'the server'} ` +
      '(SCRIPT LOAD), and a script that reads TIME and then writes runs (EVALSHA).',
  };
}

async function writeCheck(
  client: RedisClient,
  plan: RedisCheckPlan,
  bad: 'failed' | 'degraded',
): Promise<ReadinessCheck> {
  const name = 'writes';
  try {
    await within('SET', client.set(probeKey(plan.layout), '1', 'PX', 1000));
    return { name, status: 'ok', detail: 'a write is accepted (SET … PX).' };
  } catch (error) {
    return {
      name,
      status: bad,
      detail: `a write was refused: ${message(error)}; completed tokens cannot be remembered.`,
      fix: 'Point the cache at a master whose user may write (ACL +@write), with memory to spare.',
    };
  }
}

/**
 * The masters that own the cluster's slots, as the client's slot table has them, each with its pooled
 * connection: a master the client lost is no longer in `nodes('master')`, but its slots still name it.
 */
function mastersOf(cluster: Cluster): { key: string; node?: Redis }[] {
  const pooled = new Map(cluster.nodes('master').map((node) => [address(node), node]));
  const keys = new Set<string>();
  for (const owners of cluster.slots) if (owners?.[0]) keys.add(owners[0]);
  if (keys.size === 0) return [...pooled].map(([key, node]) => ({ key, node }));
  return [...keys].sort().map((key) => ({ key, node: pooled.get(key) }));
}

/** Outside the record and cache patterns (no `{scope tag}`): purges, stats and SCANs never see it. */
function probeKey(layout: RedisKeyLayout): string {
  return `${layout.prefix}readiness-probe`;
}

/** Resolves when the client is ready, has ended, or after `ms`, with the last error it reported meanwhile. */
function untilReady(client: RedisClient, ms: number): Promise<{ status: string; error?: string }> {
  if (client.status === 'ready') return Promise.resolve({ status: 'ready' });
  // A lazyConnect client connects on its first command, and the check sends none until it is connected.
  if (client.status === 'wait') client.connect().catch(() => {});
  return new Promise((resolve) => {
    let error: string | undefined;
    const onError = (e: unknown) => {
      error = message(e);
    };
    const done = () => {
      clearTimeout(timer);
      client.off('ready', done);
      client.off('end', done);
      client.off('error', onError);
      client.off('node error', onError);
      resolve({ status: client.status, ...(error === undefined ? {} : { error }) });
    };
    const timer = setTimeout(done, ms);
    timer.unref?.();
    client.on('error', onError);
    client.on('node error', onError);
    client.once('ready', done);
    client.once('end', done);
  });
}

/** `work`, or a rejection naming `what` after one check step. */
function within<T>(what: string, work: Promise<T>): Promise<T> {
  return withTimeout(work, CHECK_STEP_MS, {
    error: () => new Error(`${what}: no answer within ${CHECK_STEP_MS} ms`),
  });
}

function address(node: Redis): string {
  const { host, port, path, sentinels, name } = node.options;
  if (sentinels && sentinels.length > 0) return `the master "${name}" (through Sentinel)`;
  return path ? String(path) : `${host ?? 'localhost'}:${port ?? 6379}`;
}

/** An error's own words, without a closing period (the check's sentence has its own). */
function message(error: unknown): string {
  if (error instanceof AggregateError && error.errors[0]) return message(error.errors[0]);
  const text = error instanceof Error ? error.message || error.name : String(error);
  return text.replace(/\.+$/, '');
}

function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at > 0 && !line.startsWith('#')) fields.set(line.slice(0, at), line.slice(at + 1).trim());
  }
  return fields;
}

/** Negative when `version` is older than `floor`; an unreadable version counts as new enough. */
function compareVersions(version: string, floor: readonly number[]): number {
  const parts = version.split('.').map(Number);
  if (parts.some(Number.isNaN) || parts.length === 0) return 0;
  for (let i = 0; i < floor.length; i++) {
    const difference = (parts[i] ?? 0) - (floor[i] as number);
    if (difference !== 0) return difference;
  }
  return 0;
}
