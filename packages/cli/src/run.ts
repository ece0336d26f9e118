/**
 * The CLI as a function: `run(argv, io)` parses the arguments (commander), loads the config, runs one
 * command, prints its answer and resolves to the exit code. `main.ts` is this with the process's streams.
 */
import { readFileSync } from 'node:fs';
import { IdempotencyError, InvalidOptionError, StoreUnavailableError } from '@idempotent-mq/core';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { dlqCommand } from './commands/dlq.js';
import { forgetCommand } from './commands/forget.js';
import { inspectCommand } from './commands/inspect.js';
import { migrateCommand } from './commands/migrate.js';
import { purgeCommand } from './commands/purge.js';
import { statsCommand } from './commands/stats.js';
import {
  ENVIRONMENT,
  type IdempotentMqConfig,
  loadConfig,
  messageOf,
  type ResolvedConfig,
} from './config.js';
import { type Connections, openConnections } from './connections.js';
import type { CommandContext } from './context.js';
import { CliError, ExitCode, type ExitCodeValue } from './exit-codes.js';
import { type CommandResult, parseDuration, type Writer } from './output.js';

/** Where the CLI reads and writes. */
export interface CliIo {
  readonly stdout: Writer;
  readonly stderr: Writer;
  /** @defaultValue `process.env` */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Where relative paths and the config file are looked for. @defaultValue `process.cwd()` */
  readonly cwd?: string;
  /**
   * A config object instead of a config file (for `run()` in process: tests, an embedded broker's dead
   * letters). The environment still applies.
   */
  readonly config?: IdempotentMqConfig;
}

const VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/** The exit codes and what each means, as `--help` prints them (and the README shows them). */
export const EXIT_CODE_HELP: readonly (readonly [number, string])[] = [
  [ExitCode.ok, 'done'],
  [
    ExitCode.failure,
    'a runtime failure: the store, cache or dead-letter source could not be reached or failed',
  ],
  [ExitCode.usage, 'bad usage or configuration; nothing was attempted'],
  [
    ExitCode.notFound,
    'inspect / forget: neither the store nor the cache holds the token (dlq --id: no such letter)',
  ],
  [ExitCode.refused, 'forget: a live in-progress claim holds the token and --force was not given'],
];

/** Runs the CLI on `argv` (the arguments after the program name); resolves to the exit code. */
export async function run(argv: readonly string[], io: CliIo): Promise<ExitCodeValue> {
  const env = io.env ?? process.env;
  const cwd = io.cwd ?? process.cwd();
  const json = argv.includes('--json');
  let commandName = guessCommand(argv);
  let result: CommandResult | undefined;
  let connections: Connections | undefined;
  let config: ResolvedConfig | undefined;

  const program = buildProgram(io, async (name, globals, command) => {
    commandName = name;
    config = await loadConfig({
      cwd,
      env,
      ...(globals.config ? { path: globals.config } : {}),
      ...(io.config ? { config: io.config } : {}),
    });
    const resolved = config;
    const context: CommandContext = {
      config: resolved,
      connect: async () => {
        connections ??= await openConnections(resolved);
        return connections;
      },
    };
    result = await command(context);
  });

  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (error) {
    const failure = explain(error, config, connections);
    if (failure !== 'printed') return printFailure(io, json, commandName, failure);
    // Commander printed it (a usage error, or help): only the JSON document is left to write.
    const code = exitOf(error);
    if (json && code !== ExitCode.ok) {
      const message = (error as Error).message.replace(/^error: /, '');
      writeJsonError(io, commandName, { code: 'USAGE', exitCode: code, message });
    }
    return code;
  } finally {
    await connections?.close();
  }
  if (!result) return ExitCode.ok; // help or version was printed
  const done = result as CommandResult;
  if (json) io.stdout.write(`${JSON.stringify(done.json, null, 2)}\n`);
  else if (done.text.length > 0) io.stdout.write(`${done.text.join('\n')}\n`);
  if (done.exitCode !== ExitCode.ok && done.message) io.stderr.write(`${done.message}\n`);
  return done.exitCode;
}

type Action = (
  name: string,
  globals: { config?: string; json?: boolean },
  command: (context: CommandContext) => Promise<CommandResult>,
) => Promise<void>;

/** The commander program: commands, options and help. Exposed for the README's help (see the tests). */
export function buildProgram(io: Pick<CliIo, 'stdout' | 'stderr'>, act: Action): Command {
  const program = new Command('idempotent-mq');
  program
    .description(
      'Operate idempotent-mq: the token table, one token at a time, retention, statistics and dead letters.\n' +
        'Connects to the store and cache named in the config file, through their ports.',
    )
    .version(VERSION, '-V, --version', 'print the version')
    .option('-c, --config <path>', 'the config file (default: ./idempotent-mq.config.{mjs,js,json})')
    .option('--json', 'print one JSON document on stdout (errors too)')
    .helpOption('-h, --help', 'show help')
    .helpCommand('help [command]', 'show help for a command')
    .exitOverride()
    // A fixed width: help reads the same in a terminal, a pipe and the README.
    .configureHelp({ helpWidth: 100, showGlobalOptions: true })
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    })
    .showHelpAfterError('(run "idempotent-mq --help" for the commands and options)')
    .addHelpText('after', footer());

  const globals = (command: Command) => command.optsWithGlobals<{ config?: string; json?: boolean }>();

  program
    .command('migrate')
    .description('create or upgrade the token table of a knex store (knex stores only)')
    .option('--status', 'show which migrations ran and which are pending; change nothing')
    .action((options: { status?: boolean }, command: Command) =>
      act('migrate', globals(command), (context) => migrateCommand(context, options)),
    );

  program
    .command('inspect')
    .description('show the store record and the cache entry of one token, side by side')
    .argument('<scope>', "the handler's scope, e.g. v1:billing:PaymentConsumer.onMessage")
    .argument('<key...>', 'the key as the key function returns it (several parts: a list of keys)')
    .option('--exact', "the key is the stored key itself (as inspect prints it), not a key function's value")
    .action((scope: string, key: string[], options: { exact?: boolean }, command: Command) =>
      act('inspect', globals(command), (context) => inspectCommand(context, scope, key, options)),
    );

  program
    .command('forget')
    .description('delete one token from the store and the cache, so that its next copy runs again')
    .argument('<scope>', "the handler's scope")
    .argument('<key...>', 'the key as the key function returns it')
    .option('--force', 'delete a live in-progress claim too (its handler may still be running)')
    .option('--dry-run', 'say what would be deleted; delete nothing')
    .option('--exact', 'the key is the stored key itself')
    .action(
      (
        scope: string,
        key: string[],
        options: { force?: boolean; dryRun?: boolean; exact?: boolean },
        command: Command,
      ) => act('forget', globals(command), (context) => forgetCommand(context, scope, key, options)),
    );

  program
    .command('purge')
    .description('delete completed records past their retention, in bounded batches')
    .option('--expired', 'required: purge expired completed records (in-progress claims are never purged)')
    .option(
      '--batch-size <n>',
      "rows (keys) deleted per batch, 1 to 100000 (default: the store's, 1000)",
      integer(1, 100_000),
    )
    .option(
      '--pause <ms|auto>',
      "pause between batches: ms (0 to 60000) or auto, as long as the last batch took (default: the store's, 0)",
      pauseArg,
    )
    .option('--dry-run', 'count what would be deleted (through stats); delete nothing')
    .action(
      (
        options: { expired?: boolean; batchSize?: number; pause?: number | 'auto'; dryRun?: boolean },
        command: Command,
      ) => act('purge', globals(command), (context) => purgeCommand(context, options)),
    );

  program
    .command('stats')
    .description('count records by status, lapsed claims, expired and soon-expiring records; name the oldest')
    .option('--scope <scope>', 'count one scope only')
    .addOption(
      new Option('--within <duration>', 'the "expiring soon" window: 250ms, 30s, 15m, 24h, 7d')
        .default(86_400_000, '24h')
        .argParser(durationArg),
    )
    .action((options: { scope?: string; within?: number }, command: Command) =>
      act('stats', globals(command), (context) =>
        statsCommand(context, {
          ...(options.scope ? { scope: options.scope } : {}),
          withinMs: options.within ?? 86_400_000,
        }),
      ),
    );

  const dlq = program
    .command('dlq')
    .description('list or re-drive dead letters, each with its token looked up first');
  const sourceOptions = (command: Command) =>
    command
      .option('--source <name>', 'one dead-letter source of the config (default: all)')
      .option('--scope <scope>', 'the scope of the listener that consumes them (default: from the config)')
      .option('--group <group>', "only this consumer group's")
      .option('--topic <topic>', "only this topic's");
  sourceOptions(dlq.command('list').description('list dead letters and the state of their tokens')).action(
    (options: DlqCliOptions, command: Command) =>
      act('dlq list', globals(command), (context) => dlqCommand(context, false, options)),
  );
  sourceOptions(
    dlq
      .command('redrive')
      .description(
        're-publish dead letters whose token is not completed; report each as skipped (duplicate) or re-driven',
      ),
  )
    .option('--id <id...>', 'only these dead letters (ids as dlq list shows them)')
    .option('--all', 're-drive completed ones too (the consumer answers them as duplicates)')
    .option('--dry-run', 'say what would be re-driven; publish nothing')
    .action((options: DlqCliOptions, command: Command) =>
      act('dlq redrive', globals(command), (context) => dlqCommand(context, true, options)),
    );
  return program;
}

interface DlqCliOptions {
  source?: string;
  scope?: string;
  group?: string;
  topic?: string;
  id?: string[];
  all?: boolean;
  dryRun?: boolean;
}

function integer(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`expected an integer from ${min} to ${max}.`);
    }
    return n;
  };
}

function pauseArg(value: string): number | 'auto' {
  if (value.trim() === 'auto') return 'auto';
  return integer(0, 60_000)(value);
}

function durationArg(value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined)
    throw new InvalidArgumentError('expected a duration such as 250ms, 30s, 15m, 24h or 7d.');
  return ms;
}

function footer(): string {
  const width = Math.max(...Object.keys(ENVIRONMENT).map((name) => name.length));
  return [
    '',
    'Config file: idempotent-mq.config.{mjs,js,json} here, --config or IDEMPOTENT_MQ_CONFIG, exporting',
    "  { store: { type: 'knex', knex: { client, connection }, table: { tableName } }",
    "        or { type: 'redis', url, keyPrefix },",
    "    cache: { type: 'redis', url, keyPrefix }, deadLetters: [{ name, source, scope }] }",
    '',
    'Environment (overrides the config):',
    ...Object.entries(ENVIRONMENT).map(([name, what]) => `  ${name.padEnd(width)}  ${what}`),
    '',
    'Exit codes:',
    ...EXIT_CODE_HELP.map(([code, what]) => `  ${code}  ${what}`),
  ].join('\n');
}

/** The error as the CLI explains it, or 'printed' when commander already did (usage errors, help). */
function explain(
  error: unknown,
  config: ResolvedConfig | undefined,
  connections: Connections | undefined,
): CliError | 'printed' {
  if (error instanceof CommanderError) return 'printed';
  if (error instanceof CliError) return error;
  const store = connections?.storeDescription ?? 'store';
  const origin = config?.store.origin ?? 'the config';
  if (error instanceof StoreUnavailableError) {
    return new CliError(
      'UNREACHABLE',
      `Cannot reach the ${store} (${origin}): ${causeOf(error)}. Check that it runs and that ${origin} points at it.`,
      { cause: error },
    );
  }
  if (error instanceof InvalidOptionError) return new CliError('USAGE', error.message, { cause: error });
  if (error instanceof Error && error.name === 'IdempotencyTableMissingError') {
    return new CliError('FAILED', `${error.message} Or run: idempotent-mq migrate`, { cause: error });
  }
  if (error instanceof Error && error.name === 'CorruptRecordError') {
    return new CliError('FAILED', `${error.message} "forget --force" deletes it.`, { cause: error });
  }
  if (isNetworkFailure(error)) {
    return new CliError(
      'UNREACHABLE',
      `Cannot reach the ${store} (${origin}): ${causeOf(error)}. Check that it runs and that ${origin} points at it.`,
      { cause: error },
    );
  }
  const message = error instanceof IdempotencyError ? error.message : `Failed: ${messageOf(error)}`;
  return new CliError('FAILED', message, { cause: error });
}

function exitOf(error: unknown): ExitCodeValue {
  return error instanceof CommanderError && error.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
}

function printFailure(io: CliIo, json: boolean, command: string | undefined, error: CliError): ExitCodeValue {
  io.stderr.write(`error: ${error.message}\n`);
  if (json)
    writeJsonError(io, command, { code: error.code, exitCode: error.exitCode, message: error.message });
  return error.exitCode;
}

function writeJsonError(
  io: CliIo,
  command: string | undefined,
  error: { code: string; exitCode: number; message: string },
): void {
  io.stdout.write(`${JSON.stringify({ command: command ?? null, error }, null, 2)}\n`);
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
]);

/** Whether a connection failure lies anywhere in the error's cause chain (or an AggregateError's errors). */
function isNetworkFailure(error: unknown, depth = 0): boolean {
  if (depth > 8 || typeof error !== 'object' || error === null) return false;
  const e = error as { code?: unknown; cause?: unknown; errors?: unknown; name?: unknown };
  if (typeof e.code === 'string' && NETWORK_CODES.has(e.code)) return true;
  if (e.name === 'KnexTimeoutError') return true;
  if (Array.isArray(e.errors) && e.errors.some((inner) => isNetworkFailure(inner, depth + 1))) return true;
  return isNetworkFailure(e.cause, depth + 1);
}

/** The innermost message of an error's cause chain: the driver's own words. */
function causeOf(error: unknown): string {
  let current: unknown = error;
  for (let i = 0; i < 8; i++) {
    const cause = (current as { cause?: unknown } | null)?.cause;
    if (cause === undefined || cause === null) break;
    current = cause;
  }
  const message = messageOf(current);
  if (message !== '') return message;
  const errors = (current as { errors?: unknown[] }).errors;
  return Array.isArray(errors) && errors.length > 0
    ? errors.map(messageOf).join('; ')
    : ((current as Error).name ?? 'unknown error');
}

/** The command an argv names, for the JSON error document of a failure before any command ran. */
function guessCommand(argv: readonly string[]): string | undefined {
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '-c' || arg === '--config') {
      i++;
      continue;
    }
    if (arg.startsWith('-')) continue;
    words.push(arg);
    if (words[0] !== 'dlq' || words.length === 2) break;
  }
  return words.length > 0 ? words.join(' ') : undefined;
}
