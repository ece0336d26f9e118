/**
 * `makeIdempotent(fn, options)`: the engine without inversify, for a plain function. The same path as a
 * decorated method (the same engine, the same outcomes and errors); the store, cache, clock and logger
 * are given in the options instead of bound in a container.
 */
import type { DeliveryInfo, IdempotencyContext } from './context.js';
import { ConsoleLogger } from './defaults/console-logger.js';
import { SystemClock } from './defaults/system-clock.js';
import { resultOf } from './engine/direct-call.js';
import { InvalidOptionError } from './errors.js';
import { IdempotencyEngine } from './idempotency-engine.js';
import { MemoryIdempotencyCache } from './memory/memory-idempotency-cache.js';
import type { HandlerMethod } from './model/handler-method.js';
import { checkOptionsObject, functionOption } from './option-checks.js';
import {
  type IdempotencyMode,
  type IdempotentOptions,
  POLICY_OPTIONS,
  validateIdempotentOptions,
} from './options.js';
import type { OutcomeListener } from './outcome.js';
import type { Clock } from './ports/clock.js';
import type { IdempotencyCache } from './ports/idempotency-cache.js';
import type { IdempotencyStore } from './ports/idempotency-store.js';
import type { IdempotencyInstrumentation } from './ports/instrumentation.js';
import type { IdempotencyLogger } from './ports/logger.js';

/** The options of {@link makeIdempotent}: a method's options, and the ports a container would bind. */
export interface MakeIdempotentOptions<M, Tx = unknown> extends IdempotentOptions<M> {
  /** The source of truth for each token. Required: an in-process default would forget on restart. */
  readonly store: IdempotencyStore<Tx>;
  /** A fast, lossy memory of completed tokens in front of the store. @defaultValue an in-process LRU */
  readonly cache?: IdempotencyCache;
  /** @defaultValue the system clock */
  readonly clock?: Clock;
  /** @defaultValue the console at `warn` */
  readonly logger?: IdempotencyLogger;
  /** Hears each message's outcome (metrics, alerts). */
  readonly onOutcome?: OutcomeListener;
  /** Traces and metrics of each call (`new OpenTelemetryInstrumentation()`). @defaultValue none */
  readonly instrumentation?: IdempotencyInstrumentation;
}

/** What {@link makeIdempotent} returns: the function, idempotent, called with the message (and a delivery). */
export type IdempotentFunction<M, R> = (message: M, delivery?: DeliveryInfo) => Promise<R>;

const OWN_OPTIONS = ['store', 'cache', 'clock', 'logger', 'onOutcome', 'instrumentation'] as const;
const KNOWN = [...POLICY_OPTIONS, 'key', 'scope', 'scopeVersion', 'fingerprint', 'attempt', ...OWN_OPTIONS];

/**
 * Makes `fn` idempotent on the key that `options.key` reads from each message.
 *
 * @example
 * ```ts
 * const charge = makeIdempotent(
 *   async (m: Payment, ctx: IdempotencyContext<Knex.Transaction>) => {
 *     await ctx.trx('payments').insert({ serial: ctx.token.key, amount: m.amount });
 *   },
 *   { key: (m) => m.serial, store: new KnexIdempotencyStore(knex), scope: 'payments' },
 * );
 * await charge(payment); // a duplicate is skipped; a copy still in flight throws IdempotencyInFlightError
 * ```
 * With `mode: 'lease'` the function's `ctx.trx` is `undefined`, and a `ctx` typed with a transaction is a
 * compile error; otherwise `ctx.trx` has the store's transaction type.
 * @throws {@link InvalidOptionError} at once, naming the option, for options out of range or misspelt.
 */
export function makeIdempotent<M, R, Tx = unknown, const Mode extends IdempotencyMode = 'auto'>(
  fn: (message: M, ctx: IdempotencyContext<Mode extends 'lease' ? undefined : Tx>) => R | Promise<R>,
  options: MakeIdempotentOptions<M, Tx> & { readonly mode?: Mode },
): IdempotentFunction<M, Awaited<R>> {
  const where = `makeIdempotent(${fn?.name || 'anonymous'})`;
  if (typeof fn !== 'function')
    throw new InvalidOptionError(where, 'a function (message, ctx) => result', fn);
  checkOptionsObject(options, KNOWN, where);
  const { store, cache, clock, logger, onOutcome, instrumentation, ...methodOptions } = options;
  const store_ = store as IdempotencyStore | undefined;
  if (typeof store_?.claim !== 'function' || typeof store_.complete !== 'function') {
    throw new InvalidOptionError(
      `${where}.store`,
      'an IdempotencyStore (e.g. new KnexIdempotencyStore(knex))',
      store,
    );
  }
  functionOption(where, 'onOutcome', onOutcome, 'a function (outcome) => void');
  if (instrumentation !== undefined && typeof instrumentation?.startMessage !== 'function') {
    throw new InvalidOptionError(
      `${where}.instrumentation`,
      'an IdempotencyInstrumentation (e.g. new OpenTelemetryInstrumentation())',
      instrumentation,
    );
  }
  if (methodOptions.scope === undefined && !fn.name) {
    throw new InvalidOptionError(
      `${where}.scope`,
      'a scope: an anonymous function has no name to scope its keys by',
      undefined,
    );
  }
  validateIdempotentOptions(methodOptions as IdempotentOptions<never>, where);

  const clock_ = clock ?? new SystemClock();
  const engine = new IdempotencyEngine({
    store: store_,
    cache: cache ?? new MemoryIdempotencyCache({ clock: clock_ }),
    clock: clock_,
    logger: logger ?? new ConsoleLogger('warn'),
    listeners: onOutcome ? [onOutcome] : [],
    instrumentation,
  });
  // The function stands as the one method of a class named after it: its default scope is `v1:<name>.handle`
  // unless `scope` is given.
  const named = { [fn.name || 'anonymous']: class {} };
  const target: HandlerMethod = {
    ctor: named[fn.name || 'anonymous'] as HandlerMethod['ctor'],
    method: 'handle',
    options: methodOptions as IdempotentOptions<never>,
    fn: (message, ctx) => fn(message as M, ctx as IdempotencyContext<Mode extends 'lease' ? undefined : Tx>),
  };
  return async (message: M, delivery?: DeliveryInfo): Promise<Awaited<R>> =>
    resultOf(await engine.execute(target, undefined, message, delivery)) as Awaited<R>;
}
