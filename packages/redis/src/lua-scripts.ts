/**
 * The store's Lua scripts, kept as `.lua` files in `lua/` and run by name with EVALSHA (EVAL once per
 * node that has not seen the script yet). The user's client is used as is: no commands are added to it.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import type { RedisClient } from './redis-client.js';

export type ScriptName =
  | 'claim'
  | 'renew'
  | 'complete'
  | 'release'
  | 'read'
  | 'purge'
  | 'inspect'
  | 'forget'
  | 'stats';

const NAMES: readonly ScriptName[] = [
  'claim',
  'renew',
  'complete',
  'release',
  'read',
  'purge',
  'inspect',
  'forget',
  'stats',
];
// `lua/` sits beside `src/` and `dist/`, so the same URL works from sources under vitest and after a build.
const LUA_DIR = new URL('../lua/', import.meta.url);
const INCLUDE = /^-- @include ([a-z-]+)$/gm;

interface Script {
  readonly source: string;
  readonly sha: string;
}

/** A script's text with its `-- @include <name>` lines replaced by `lua/includes/<name>.lua`. */
export function loadScript(name: string): string {
  const text = readFileSync(new URL(`${name}.lua`, LUA_DIR), 'utf8');
  return text.replace(INCLUDE, (_, include: string) =>
    readFileSync(new URL(`includes/${include}.lua`, LUA_DIR), 'utf8'),
  );
}

let loaded: Map<ScriptName, Script> | undefined;

function scripts(): Map<ScriptName, Script> {
  if (!loaded) {
    loaded = new Map(
      NAMES.map((name) => {
        const source = loadScript(name);
        return [name, { source, sha: sha1(source) }];
      }),
    );
  }
  return loaded;
}

/** Runs the store's scripts by name with EVALSHA, loading a script (EVAL) on a node that does not know it yet. */
export class LuaScripts {
  private readonly scripts = scripts();

  constructor(private readonly client: RedisClient) {}

  /** How many scripts the store runs. */
  get count(): number {
    return this.scripts.size;
  }

  /** Runs a script; on a cluster all `keys` must share one slot (ours share the scope's hash tag). */
  async run(name: ScriptName, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    return this.evaluate(this.scripts.get(name) as Script, keys, args);
  }

  /** Runs a script given by its text, as {@link run} does (the start-up check's probe). */
  async runSource(
    source: string,
    keys: readonly string[],
    args: readonly (string | number)[] = [],
  ): Promise<unknown> {
    return this.evaluate({ source, sha: sha1(source) }, keys, args);
  }

  /**
   * Loads every script, and `extra` ones, on one node (SCRIPT LOAD compiles them there), so that the
   * first claims need no EVAL; throws what the node answers when it refuses one.
   */
  async loadOn(node: Redis, ...extra: string[]): Promise<void> {
    const all = [...this.scripts.values(), ...extra.map((source) => ({ source, sha: sha1(source) }))];
    for (const script of all) {
      const sha = await node.script('LOAD', script.source);
      if (sha !== script.sha) throw new Error(`SCRIPT LOAD answered SHA ${String(sha)}, not ${script.sha}`);
    }
  }

  private async evaluate(
    script: Script,
    keys: readonly string[],
    args: readonly (string | number)[],
  ): Promise<unknown> {
    try {
      return await this.client.evalsha(script.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error && error.message.startsWith('NOSCRIPT'))) throw error;
      return this.client.eval(script.source, keys.length, ...keys, ...args);
    }
  }
}

function sha1(source: string): string {
  return createHash('sha1').update(source).digest('hex');
}
