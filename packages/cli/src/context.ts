/** What every command receives: the resolved config, its connections (opened on first use), the token helper. */
import { canonicalKey, type TokenRef } from '@idempotent-mq/core/adapter';
import type { ResolvedConfig } from './config.js';
import type { Connections } from './connections.js';
import { CliError } from './exit-codes.js';

/** A command's view of the run. */
export interface CommandContext {
  readonly config: ResolvedConfig;
  /** Opens the store and cache the first time it is called; the run closes them. */
  connect(): Promise<Connections>;
}

/**
 * The token a command line names. The key parts are turned into the stored key exactly as the engine
 * turns a key function's value (one part as is, several joined canonically, long keys hashed), unless
 * `exact`: then the one part is the stored key itself (as `inspect` prints it).
 */
export function tokenOf(
  scope: string,
  keyParts: readonly string[],
  exact: boolean,
  maxKeyLength: number,
): TokenRef {
  if (scope.trim() === '')
    throw new CliError(
      'USAGE',
      'The scope is empty. Give it as inspect shows it, e.g. v1:billing:PaymentConsumer.onMessage.',
    );
  if (scope.includes('\u0000'))
    throw new CliError('USAGE', 'A scope never holds U+0000. Check the scope argument.');
  if (exact) {
    if (keyParts.length !== 1) {
      throw new CliError(
        'USAGE',
        `--exact takes the stored key as one argument (got ${keyParts.length}). Quote it.`,
      );
    }
    return { scope, key: keyParts[0] as string };
  }
  const resolved = canonicalKey(keyParts.length === 1 ? keyParts[0] : keyParts, maxKeyLength);
  if ('missing' in resolved)
    throw new CliError('USAGE', `No usable key: ${resolved.missing}. Give the message's key.`);
  return { scope, key: resolved.key };
}

/** A hint for a scope that has none of the engine's version prefix (`v1:`), shown when nothing is found. */
export function scopeHint(scope: string): string | undefined {
  return /^v[^:]+:/.test(scope)
    ? undefined
    : `Scopes are versioned by the engine: did you mean "v1:${scope}"?`;
}
