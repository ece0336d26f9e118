/** `purge --expired`: deletes completed records past their retention, through the store's `purgeExpired`. */
import type { CommandContext } from '../context.js';
import { CliError, ExitCode } from '../exit-codes.js';
import type { CommandResult } from '../output.js';

/** The options of `purge`. */
export interface PurgeOptions {
  /** Required: the only purge there is (a guard against a bare `purge`). */
  readonly expired?: boolean;
  /** Rows (keys) per batch. @defaultValue the store's own (1000) */
  readonly batchSize?: number;
  /** Pause between batches: ms, or `'auto'` (as long as the last batch took). @defaultValue the store's own */
  readonly pause?: number | 'auto';
  /** Count what would be deleted (through `stats`), delete nothing. */
  readonly dryRun?: boolean;
}

/** Runs `purge`. */
export async function purgeCommand(context: CommandContext, options: PurgeOptions): Promise<CommandResult> {
  if (!options.expired) {
    throw new CliError(
      'USAGE',
      'purge deletes only completed records past their retention: pass --expired to say so (in-progress claims are never purged).',
    );
  }
  const connections = await context.connect();
  const { store } = connections;
  const batchSize = options.batchSize;
  if (options.dryRun) {
    if (!store.stats) {
      throw new CliError(
        'UNSUPPORTED',
        `--dry-run counts through stats(), which the ${connections.storeDescription} does not have. Run without --dry-run.`,
      );
    }
    const stats = await store.stats();
    return {
      exitCode: ExitCode.ok,
      json: {
        command: 'purge',
        dryRun: true,
        expired: stats.expired,
        purged: 0,
        batchSize: batchSize ?? null,
      },
      text: [
        `dry run: ${stats.expired} expired completed records would be deleted (${connections.storeDescription})`,
      ],
    };
  }
  const started = Date.now();
  const { pause } = options;
  const purged = await store.purgeExpired({
    ...(batchSize === undefined ? {} : { batchSize }),
    ...(pause === undefined ? {} : { pause }),
  });
  const tookMs = Date.now() - started;
  return {
    exitCode: ExitCode.ok,
    json: {
      command: 'purge',
      dryRun: false,
      purged,
      batchSize: batchSize ?? null,
      pause: pause ?? null,
      tookMs,
    },
    text: [
      `purged ${purged} expired completed record${purged === 1 ? '' : 's'} in ${tookMs} ms` +
        `${batchSize === undefined ? '' : `, batches of ${batchSize}`}` +
        `${pause === undefined ? '' : `, pausing ${pause === 'auto' ? 'as long as each batch took' : `${pause} ms`}`}` +
        ` (${connections.storeDescription})`,
    ],
  };
}
