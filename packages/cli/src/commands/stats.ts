/** `stats`: the store's records by status, lapsed claims, expired and soon-expiring records, the oldest. */
import type { CommandContext } from '../context.js';
import { CliError, ExitCode } from '../exit-codes.js';
import { type CommandResult, duration, recordJson, table, when } from '../output.js';

/** The options of `stats`. */
export interface StatsCommandOptions {
  /** Count one scope only. */
  readonly scope?: string;
  /** The "expiring soon" window, in ms. @defaultValue 24 hours */
  readonly withinMs?: number;
}

/** Runs `stats`. */
export async function statsCommand(
  context: CommandContext,
  options: StatsCommandOptions,
): Promise<CommandResult> {
  const connections = await context.connect();
  const { store } = connections;
  if (!store.stats) {
    throw new CliError(
      'UNSUPPORTED',
      `The ${connections.storeDescription} has no stats() (an optional method of the store port). ` +
        'Add it to the adapter: see IdempotencyStore.stats in @idempotent-mq/core.',
    );
  }
  const stats = await store.stats({
    ...(options.scope === undefined ? {} : { scope: options.scope }),
    ...(options.withinMs === undefined ? {} : { expiringWithinMs: options.withinMs }),
  });
  const { now } = stats;
  const json = {
    command: 'stats',
    store: connections.storeDescription,
    now,
    scope: stats.scope ?? null,
    total: stats.inProgress + stats.completed,
    byStatus: { inProgress: stats.inProgress, completed: stats.completed },
    lapsedClaims: stats.lapsedClaims,
    expired: stats.expired,
    expiringWithinMs: stats.expiringWithinMs,
    expiringSoon: stats.expiringSoon,
    oldest: stats.oldest ? recordJson(stats.oldest, now) : null,
    oldestInProgress: stats.oldestInProgress ? recordJson(stats.oldestInProgress, now) : null,
    ...(stats.unreadable === undefined ? {} : { unreadable: stats.unreadable }),
  };
  const rows: [string, string][] = [
    ['records', String(json.total)],
    [
      'in progress',
      `${stats.inProgress} (${stats.lapsedClaims} lapsed: their owner is gone; the next copy takes them over)`,
    ],
    ['completed', `${stats.completed} (${stats.expired} past retention, awaiting purge --expired)`],
    [`expiring within ${duration(stats.expiringWithinMs)}`, String(stats.expiringSoon)],
    [
      'oldest',
      stats.oldest ? `${label(stats.oldest)} created ${when(stats.oldest.createdAt, now)}` : '(none)',
    ],
    [
      'oldest claim',
      stats.oldestInProgress
        ? `${label(stats.oldestInProgress)} created ${when(stats.oldestInProgress.createdAt, now)}`
        : '(none)',
    ],
  ];
  if (stats.unreadable)
    rows.push(['unreadable', `${stats.unreadable} keys that are not records of this store`]);
  const heading = `${connections.storeDescription}${stats.scope === undefined ? '' : `, scope ${stats.scope}`}`;
  return { exitCode: ExitCode.ok, json, text: [heading, ...table(rows, '  ')] };
}

function label(record: { scope: string; key: string; status: string }): string {
  return `${record.status} ${record.scope} ${record.key}`;
}
