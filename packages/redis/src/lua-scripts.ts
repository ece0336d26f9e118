/**
 * The store's Lua scripts, kept as `.lua` files in `lua/` and run by name with EVALSHA (EVAL once per
 * node that has not seen the script yet). The user's client is used as is: no commands are added to it.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
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
        return [name, { source, sha: createHash('sha1').update(source).digest('hex') }];
      }),
    );
  }
  return loaded;
}

export class LuaScripts {
  private readonly scripts = scripts();

  constructor(private readonly client: RedisClient) {}

  /** Runs a script; on a cluster all `keys` must share one slot (ours share the scope's hash tag). */
  async run(name: ScriptName, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    const script = this.scripts.get(name) as Script;
    try {
      return await this.client.evalsha(script.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error instanceof Error && error.message.startsWith('NOSCRIPT'))) throw error;
      return this.client.eval(script.source, keys.length, ...keys, ...args);
    }
  }
}
