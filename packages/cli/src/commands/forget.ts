/** `forget <scope> <key...>`: deletes a token from the store and the cache together, so the next copy runs. */
import { type CommandContext, scopeHint, tokenOf } from '../context.js';
import { CliError, ExitCode } from '../exit-codes.js';
import { type CommandResult, duration, recordJson, recordLines } from '../output.js';
import { readCache } from './inspect.js';

/** The options of `forget`. */
export interface ForgetCommandOptions {
  /** Delete a live in-progress claim too. */
  readonly force?: boolean;
  /** Say what would be deleted; delete nothing. */
  readonly dryRun?: boolean;
  /** The key argument is the stored key itself. */
  readonly exact?: boolean;
}

/** Runs `forget`. */
export async function forgetCommand(
  context: CommandContext,
  scope: string,
  keyParts: readonly string[],
  options: ForgetCommandOptions,
): Promise<CommandResult> {
  const token = tokenOf(scope, keyParts, options.exact === true, context.config.maxKeyLength);
  const connections = await context.connect();
  const { store, cache } = connections;
  if (!store.forget) {
    throw new CliError(
      'UNSUPPORTED',
      `The ${connections.storeDescription} has no forget() (an optional method of the store port). ` +
        'Add it to the adapter: see IdempotencyStore.forget in @idempotent-mq/core.',
    );
  }
  const dryRun = options.dryRun === true;
  const force = options.force === true;
  const cached = await readCache(connections, token);
  // The store first, then the cache: a copy arriving in between may refill the cache from a completed
  // record, and would leave the cache saying "completed" for a token the store no longer holds.
  const result = await store.forget(token, { force, dryRun });
  const hadCacheEntry = cached?.entry !== undefined;
  let cacheDeleted = false;
  if (cache && result.outcome !== 'refused' && !dryRun) {
    try {
      await cache.delete(token);
      cacheDeleted = hadCacheEntry;
    } catch (error) {
      const what = result.outcome === 'forgotten' ? "The store's record was deleted, but the" : 'The';
      throw new CliError(
        'FAILED',
        `${what} cache entry could not be deleted: ${error instanceof Error ? error.message : String(error)}. ` +
          'Run forget again when the cache answers (it is safe to repeat).',
        { cause: error },
      );
    }
  }

  const now = Date.now();
  const record = result.outcome === 'absent' ? undefined : result.record;
  const verb = dryRun ? 'would delete' : 'deleted';
  const json = {
    command: 'forget',
    token,
    dryRun,
    force,
    store: {
      description: connections.storeDescription,
      outcome: result.outcome,
      record: record ? recordJson(record, now) : null,
    },
    cache: cached
      ? { description: connections.cacheDescription, hadEntry: hadCacheEntry, deleted: cacheDeleted }
      : null,
  };
  const text: string[] = [];
  if (result.outcome === 'refused') {
    const left =
      result.record.leaseExpiresAt === undefined
        ? ''
        : `, lease ${duration(Math.max(0, result.record.leaseExpiresAt - now))} left`;
    const message =
      `Refused: a live claim holds the token (owner ${result.record.owner}, fence ${result.record.fence}${left}); ` +
      'a handler may be running it now. Wait for it to finish, or pass --force to delete the claim anyway ' +
      '(its handler would then complete nothing, and a copy arriving meanwhile runs again). Nothing was deleted.';
    text.push(
      'store   refused: a live claim holds the token (see stderr)',
      ...recordLines(result.record, now),
    );
    return { exitCode: ExitCode.refused, json, text, message };
  }
  if (result.outcome === 'forgotten') {
    text.push(`store   ${verb} the ${record ? `${record.status} record` : 'unreadable entry'}`);
    if (record) text.push(...recordLines(record, now));
    if (record?.status === 'inProgress' && force) {
      text.push('  (a live claim, deleted under --force: its handler may still be running)');
    }
  } else {
    text.push('store   no record');
  }
  if (cached) text.push(`cache   ${hadCacheEntry ? `${verb} the entry` : 'no entry'}`);
  else text.push('cache   none configured');
  if (result.outcome === 'absent' && !hadCacheEntry) {
    const hint = scopeHint(token.scope);
    const message = `Neither the store nor the cache holds the token (scope ${token.scope}, key ${token.key}).${hint ? ` ${hint}` : ''}`;
    return { exitCode: ExitCode.notFound, json, text, message };
  }
  if (dryRun) text.push('', 'dry run: nothing was deleted');
  else text.push('', 'the next copy of this message runs the handler again');
  return { exitCode: ExitCode.ok, json, text };
}
