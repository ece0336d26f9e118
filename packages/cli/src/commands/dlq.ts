/**
 * `dlq list` and `dlq redrive`: dead letters with their tokens looked up first. A letter whose token is
 * completed was processed after all (by another copy): re-driving it would only be answered as a
 * duplicate, so it is skipped unless `--all`. Absent (released after a failure) or in-progress tokens are
 * re-driven: the consumer runs them (or waits for the live claim).
 */
import { canonicalKey, cutText, type IdempotencyRecord, type TokenRef } from '@idempotent-mq/core/adapter';
import type { CommandContext } from '../context.js';
import type { DeadLetter, DeadLetterSource, DeadLetterSourceConfig } from '../dead-letters.js';
import { CliError, ExitCode } from '../exit-codes.js';
import type { CommandResult } from '../output.js';

/** The options of `dlq list` and `dlq redrive`. */
export interface DlqOptions {
  /** One source by name. @defaultValue every configured source */
  readonly source?: string;
  /** The scope of the listener, for every letter (overrides the config's). */
  readonly scope?: string;
  readonly group?: string;
  readonly topic?: string;
  /** `redrive`: only these letters (ids as `dlq list` shows them). */
  readonly id?: readonly string[];
  /** `redrive`: re-drive completed ones too. */
  readonly all?: boolean;
  /** `redrive`: say what would be done, publish nothing. */
  readonly dryRun?: boolean;
}

/** What a letter's token says, and what `redrive` does (or did) with it. */
interface Examined {
  readonly source: string;
  readonly letter: DeadLetter;
  readonly token?: TokenRef;
  /** Why no token could be told (no scope, no usable key). */
  readonly noToken?: string;
  readonly record?: IdempotencyRecord;
}

type Action = 'skipped' | 'redriven' | 'wouldRedrive' | 'failed';

/** Runs `dlq list` (`redrive` false) or `dlq redrive`. */
export async function dlqCommand(
  context: CommandContext,
  redrive: boolean,
  options: DlqOptions,
): Promise<CommandResult> {
  const configs = selectSources(context.config.deadLetters, options.source);
  const opened: { config: DeadLetterSourceConfig; source: DeadLetterSource }[] = [];
  try {
    for (const config of configs) opened.push({ config, source: await openSource(config) });
    const letters: { config: DeadLetterSourceConfig; source: DeadLetterSource; letter: DeadLetter }[] = [];
    for (const { config, source } of opened) {
      for (const letter of await listFrom(config, source)) {
        if (options.group !== undefined && letter.consumerGroup !== options.group) continue;
        if (options.topic !== undefined && letter.topic !== options.topic) continue;
        letters.push({ config, source, letter });
      }
    }
    const ids = options.id ?? [];
    const chosen = ids.length === 0 ? letters : letters.filter((l) => ids.includes(l.letter.id));
    const missing = ids.filter((id) => !letters.some((l) => l.letter.id === id));
    if (missing.length > 0) {
      throw new CliError(
        'NOT_FOUND',
        `No dead letter with id ${missing.join(', ')}${options.source ? ` in source ${options.source}` : ''}. "idempotent-mq dlq list" shows the ids.`,
      );
    }
    const examined = await examine(context, chosen, options.scope);
    if (redrive) {
      const unscoped = examined.filter((e) => e.noToken?.startsWith('no scope'));
      if (unscoped.length > 0) {
        const groups = [...new Set(unscoped.map((e) => `${e.source}: ${e.letter.consumerGroup}`))];
        throw new CliError(
          'USAGE',
          `Cannot tell the scope of the listener for ${groups.join('; ')}, so their tokens cannot be looked up. ` +
            'Pass --scope, or set scope in deadLetters[] of the config (a string, or (letter) => scope). Nothing was re-driven.',
        );
      }
    }
    const sources = new Map(opened.map((o) => [o.config.name, o.source]));
    const rows: Record<string, unknown>[] = [];
    const text: string[] = [];
    const counts: Record<Action, number> = { skipped: 0, redriven: 0, wouldRedrive: 0, failed: 0 };
    for (const e of examined) {
      const state = tokenState(e);
      let action: Action | undefined;
      let reason = decision(e, options.all === true);
      if (redrive) {
        if (!reason.redrive) {
          action = 'skipped';
        } else if (options.dryRun) {
          action = 'wouldRedrive';
        } else {
          try {
            await (sources.get(e.source) as DeadLetterSource).redrive(e.letter);
            action = 'redriven';
          } catch (error) {
            action = 'failed';
            reason = {
              redrive: true,
              why: `re-drive failed: ${error instanceof Error ? error.message : String(error)}`,
            };
          }
        }
        counts[action]++;
      }
      rows.push({
        source: e.source,
        id: e.letter.id,
        topic: e.letter.topic,
        consumerGroup: e.letter.consumerGroup,
        keys: e.letter.keys,
        messageId: e.letter.messageId ?? null,
        reason: e.letter.reason ?? null,
        deliveryAttempt: e.letter.deliveryAttempt ?? null,
        token: e.token ?? null,
        tokenState: state,
        ...(redrive ? { action, why: reason.why } : { wouldRedrive: reason.redrive, why: reason.why }),
      });
      const shown = `${e.source}  ${e.letter.id}  ${e.letter.topic}  keys ${e.letter.keys.join(',') || '(none)'}`;
      text.push(
        redrive
          ? `${label(action as Action).padEnd(14)}${shown}  (${reason.why})`
          : `${shown}  token ${state}${e.letter.reason ? `  dead-lettered: ${cutText(e.letter.reason, 80)}` : ''}`,
      );
    }
    if (rows.length === 0) text.push('no dead letters');
    else if (redrive) {
      text.push(
        '',
        `${rows.length} dead letter${rows.length === 1 ? '' : 's'}: ${counts.redriven} re-driven, ${counts.skipped} skipped` +
          `${options.dryRun ? `, ${counts.wouldRedrive} would be re-driven (dry run)` : ''}, ${counts.failed} failed`,
      );
    }
    const json = {
      command: redrive ? 'dlq redrive' : 'dlq list',
      sources: configs.map((c) => c.name),
      ...(redrive ? { dryRun: options.dryRun === true, all: options.all === true, counts } : {}),
      letters: rows,
    };
    if (counts.failed > 0) {
      return {
        exitCode: ExitCode.failure,
        json,
        text,
        message: `${counts.failed} dead letter${counts.failed === 1 ? '' : 's'} could not be re-driven (see above); the others were handled. Run redrive again once the source answers.`,
      };
    }
    return { exitCode: ExitCode.ok, json, text };
  } finally {
    await Promise.allSettled(opened.map((o) => o.source.close?.()));
  }
}

function selectSources(
  all: readonly DeadLetterSourceConfig[],
  name: string | undefined,
): DeadLetterSourceConfig[] {
  if (all.length === 0) {
    throw new CliError(
      'UNSUPPORTED',
      'No dead-letter sources are configured. Add deadLetters: [{ name, source, scope }] to a JavaScript config ' +
        'file (idempotent-mq.config.mjs); see the README for what each transport offers.',
    );
  }
  if (name === undefined) return [...all];
  const found = all.find((c) => c.name === name);
  if (!found) {
    throw new CliError(
      'USAGE',
      `No dead-letter source named "${name}". Configured: ${all.map((c) => c.name).join(', ')}.`,
    );
  }
  return [found];
}

async function openSource(config: DeadLetterSourceConfig): Promise<DeadLetterSource> {
  try {
    return typeof config.source === 'function' ? await config.source() : config.source;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // A source refusing its options is a configuration to fix, not a broker to wait for.
    if ((error as { code?: unknown } | null)?.code === 'INVALID_OPTION') {
      throw new CliError('CONFIG', `The dead-letter source "${config.name}" is misconfigured: ${message}`, {
        cause: error,
      });
    }
    throw new CliError(
      'UNREACHABLE',
      `The dead-letter source "${config.name}" could not be opened: ${message}.`,
      {
        cause: error,
      },
    );
  }
}

async function listFrom(
  config: DeadLetterSourceConfig,
  source: DeadLetterSource,
): Promise<readonly DeadLetter[]> {
  try {
    return await source.list();
  } catch (error) {
    throw new CliError(
      'FAILED',
      `The dead-letter source "${config.name}" could not list its dead letters: ${error instanceof Error ? error.message : String(error)}.`,
      { cause: error },
    );
  }
}

/** Tells each letter's token and reads the tokens in one store call. */
async function examine(
  context: CommandContext,
  letters: readonly { config: DeadLetterSourceConfig; letter: DeadLetter }[],
  scopeOption: string | undefined,
): Promise<Examined[]> {
  const told = letters.map(({ config, letter }): Examined => {
    const scope = scopeOption ?? (typeof config.scope === 'function' ? config.scope(letter) : config.scope);
    if (scope === undefined || scope === '') {
      return { source: config.name, letter, noToken: 'no scope: pass --scope or set it in the config' };
    }
    const key = canonicalKey(config.key ? config.key(letter) : letter.keys, context.config.maxKeyLength);
    if ('missing' in key) return { source: config.name, letter, noToken: `no key (${key.missing})` };
    return { source: config.name, letter, token: { scope, key: key.key } };
  });
  const withToken = told.filter((e) => e.token);
  if (withToken.length === 0) return told;
  const { store } = await context.connect();
  const records = await store.getMany(withToken.map((e) => e.token as TokenRef));
  const found = new Map(withToken.map((e, i) => [e, records[i]]));
  return told.map((e) => {
    const record = found.get(e);
    return record ? { ...e, record } : e;
  });
}

function tokenState(e: Examined): string {
  if (!e.token) return 'unknown';
  return e.record ? e.record.status : 'absent';
}

/** Whether to re-drive a letter, and why, in the words the command prints. */
function decision(e: Examined, all: boolean): { redrive: boolean; why: string } {
  if (!e.token) {
    return all
      ? { redrive: true, why: `${e.noToken}; --all` }
      : { redrive: false, why: `${e.noToken}: its token cannot be looked up; --all re-drives it anyway` };
  }
  if (e.record?.status === 'completed') {
    return all
      ? { redrive: true, why: 'token completed; --all: the consumer will answer it as a duplicate' }
      : { redrive: false, why: 'duplicate: token completed' };
  }
  if (e.record?.status === 'inProgress') {
    return {
      redrive: true,
      why: 'token in progress: another copy holds a claim; the consumer retries it until it ends',
    };
  }
  return { redrive: true, why: 'token absent: it never completed (failed, or never ran)' };
}

function label(action: Action): string {
  return { skipped: 'skipped', redriven: 're-driven', wouldRedrive: 'would re-drive', failed: 'failed' }[
    action
  ];
}
