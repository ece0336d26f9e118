/**
 * Options of `@Idempotent` and of `IdempotencyModule`, their defaults, and their validation. Options are
 * validated once, at start-up (decoration and module load), and an invalid one names itself.
 */
import { InvalidOptionError } from './errors.js';
import type { IdempotencyKeyValue } from './idempotency-key.js';
import { MIN_KEY_LENGTH } from './idempotency-key.js';
import {
  booleanOption,
  checkOptionsObject,
  enumOption,
  integerOption,
  MAX_TIMER_MS,
  optionName,
} from './option-checks.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const DAY = 24 * 60 * MINUTE;

/** How a method's copies are run. */
export type IdempotencyMode = 'auto' | 'transactional' | 'lease';

/**
 * Options shared by `@Idempotent` and the module-wide defaults. Every field is optional; a method's
 * options override the module's.
 */
export interface IdempotencyPolicyOptions {
  /**
   * How long a completed record is kept. Keep it longer than the broker may redeliver.
   * (The listener registry warns at start-up when it is shorter than its transport's redelivery horizon.)
   * @defaultValue 7 days
   */
  ttlMs?: number;
  /**
   * How long a claim is held without renewal before another copy may take it over.
   * @defaultValue 60 000 ms
   */
  leaseMs?: number;
  /**
   * How often a running handler renews its lease. Must be shorter than `leaseMs`.
   * @defaultValue a third of `leaseMs`
   */
  keepAliveMs?: number;
  /**
   * Renew the lease while the handler runs, so that a slow live handler is not taken over. `false` for
   * handlers that must never run past one lease: the handler is then given up on after `leaseMs`.
   * @defaultValue `true`
   */
  keepAlive?: boolean;
  /**
   * The longest a handler may run. Past it the engine gives up on it: renewal stops (another copy may
   * take the token over once the lease runs out, and this owner's late completion is refused), a
   * transactional handler's transaction is rolled back, and the message fails with
   * {@link HandlerTimeoutError} (the broker redelivers it). With `keepAlive: false` the bound is `leaseMs`.
   * @defaultValue five times `leaseMs`
   */
  maxHandlerMs?: number;
  /**
   * How many times a transaction that failed on a deadlock, a serialization failure or a busy database
   * (as the store's `isTransient` tells) is run again at once, with jitter, before the message goes back
   * to the broker. Only what can be undone is rerun: the whole transaction in transactional mode, the
   * claim alone in lease mode.
   * @defaultValue 3
   */
  transientRetries?: number;
  /**
   * `transactional`: claim, handler and completion in one store transaction, handed over as `ctx.trx`.
   * `lease`: the claim commits first; for effects outside the store. `auto`: transactional when the
   * store has transactions.
   * @defaultValue `'auto'`
   */
  mode?: IdempotencyMode;
  /**
   * A message without a usable key: `reject` throws {@link MissingIdempotencyKeyError}; `process` runs
   * it unprotected (and says so in the outcome event).
   * @defaultValue `'reject'`
   */
  onMissingKey?: 'reject' | 'process';
  /**
   * A known key with a different payload: `reject` throws {@link PayloadConflictError}; `duplicate`
   * treats it as a duplicate.
   * @defaultValue `'reject'`
   */
  onConflict?: 'reject' | 'duplicate';
  /**
   * When the handler fails (lease mode): `release` the claim so the redelivery runs at once; `keep` it
   * until its lease expires; `keepOnFinalAttempt`: release, except on the final delivery attempt.
   * In transactional mode the rollback always releases.
   * @defaultValue `'release'`
   */
  onFailure?: 'release' | 'keep' | 'keepOnFinalAttempt';
  /**
   * The store cannot be reached: `failClosed` fails the message so the broker redelivers it later;
   * `failOpen` runs the handler unprotected.
   * @defaultValue `'failClosed'`
   */
  onStoreUnavailable?: 'failClosed' | 'failOpen';
  /**
   * Keep the handler's JSON result and hand it back on a duplicate.
   * @defaultValue `false`
   */
  storeResult?: boolean;
  /**
   * Keys longer than this (in code points) are stored as a prefix and a SHA-256 of the whole key.
   * @defaultValue 250
   */
  maxKeyLength?: number;
  /**
   * A cache call slower than this is abandoned and the store decides.
   * @defaultValue 100 ms
   */
  cacheTimeoutMs?: number;
}

/** Module-wide defaults for every `@Idempotent` method; a method's own options win. */
export type IdempotencyModuleOptions = IdempotencyPolicyOptions;

/** The options of one `@Idempotent` method. */
export interface IdempotentOptions<M = unknown> extends IdempotencyPolicyOptions {
  /** The idempotency key: a business key the producer sets, never the broker's message id. */
  key: (message: M) => IdempotencyKeyValue;
  /**
   * The key space. Defaults to `<consumer group>:<Class>.<method>`; set it so that a rename does not
   * change the key space, or so that two handlers deliberately share one.
   */
  scope?: string;
  /**
   * Prefixed to the scope (`v1:`): bump it to start a fresh key space on purpose.
   * @defaultValue 1
   */
  scopeVersion?: number | string;
  /**
   * What must be equal for a copy to count as a duplicate rather than a conflict. `false` turns the
   * check off.
   * @defaultValue the message's `body` when it has one, else no check
   */
  fingerprint?: ((message: M) => unknown) | false;
  /**
   * Which delivery this is (1 for the first). Read from the delivery the transport passes when there
   * is one.
   * @defaultValue `message.deliveryAttempt`, else 1
   */
  attempt?: (message: M) => number | undefined;
}

/** Options whose defaults derive from `leaseMs`. */
type Derived = 'keepAliveMs' | 'maxHandlerMs';

/** Every policy option with its default filled in. */
export type ResolvedPolicy = Required<IdempotencyPolicyOptions>;

export const DEFAULT_POLICY: Readonly<Required<Omit<IdempotencyPolicyOptions, Derived>>> = Object.freeze({
  ttlMs: 7 * DAY,
  leaseMs: MINUTE,
  keepAlive: true,
  transientRetries: 3,
  mode: 'auto',
  onMissingKey: 'reject',
  onConflict: 'reject',
  onFailure: 'release',
  onStoreUnavailable: 'failClosed',
  storeResult: false,
  maxKeyLength: 250,
  cacheTimeoutMs: 100,
});

const ENUMS: Record<string, readonly string[]> = {
  mode: ['auto', 'transactional', 'lease'],
  onMissingKey: ['reject', 'process'],
  onConflict: ['reject', 'duplicate'],
  onFailure: ['release', 'keep', 'keepOnFinalAttempt'],
  onStoreUnavailable: ['failClosed', 'failOpen'],
};

/** Every policy option's name. */
export const POLICY_OPTIONS: readonly (keyof IdempotencyPolicyOptions)[] = [
  ...(Object.keys(DEFAULT_POLICY) as (keyof IdempotencyPolicyOptions)[]),
  'keepAliveMs',
  'maxHandlerMs',
];

/** Every `@Idempotent` option's name. */
const IDEMPOTENT_OPTIONS: readonly string[] = [
  ...POLICY_OPTIONS,
  'key',
  'scope',
  'scopeVersion',
  'fingerprint',
  'attempt',
];

/**
 * Checks policy options; `where` prefixes the option name in the error. `known` are the names the
 * options object may hold (the module's: the policy options; a method's: those and its own).
 */
export function validatePolicy(
  options: IdempotencyPolicyOptions,
  where: string,
  known: readonly string[] = POLICY_OPTIONS,
): void {
  checkOptionsObject(options, known, where);
  integerOption(where, 'ttlMs', options.ttlMs, { min: 1, max: Number.MAX_SAFE_INTEGER });
  integerOption(where, 'leaseMs', options.leaseMs, { min: 10, max: MAX_TIMER_MS });
  integerOption(where, 'keepAliveMs', options.keepAliveMs, { min: 1, max: MAX_TIMER_MS });
  integerOption(where, 'maxKeyLength', options.maxKeyLength, { min: MIN_KEY_LENGTH, max: 10_000 });
  integerOption(where, 'cacheTimeoutMs', options.cacheTimeoutMs, { min: 1, max: 60_000 });
  integerOption(where, 'maxHandlerMs', options.maxHandlerMs, { min: 10, max: MAX_TIMER_MS });
  integerOption(where, 'transientRetries', options.transientRetries, { min: 0, max: 10 });
  for (const [option, accepted] of Object.entries(ENUMS)) {
    enumOption(where, option, (options as Record<string, unknown>)[option], accepted);
  }
  booleanOption(where, 'storeResult', options.storeResult);
  booleanOption(where, 'keepAlive', options.keepAlive);
  if (
    options.keepAliveMs !== undefined &&
    options.leaseMs !== undefined &&
    options.keepAliveMs >= options.leaseMs
  ) {
    throw new InvalidOptionError(
      optionName(where, 'keepAliveMs'),
      `less than leaseMs (${options.leaseMs})`,
      options.keepAliveMs,
    );
  }
}

/** Checks the options of one `@Idempotent` method. */
export function validateIdempotentOptions(options: IdempotentOptions<never>, where: string): void {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new InvalidOptionError(where, 'an options object with a key function', options);
  }
  checkOptionsObject(options, IDEMPOTENT_OPTIONS, where);
  if (typeof options.key !== 'function') {
    throw new InvalidOptionError(`${where}.key`, 'a function (message) => string | string[]', options.key);
  }
  if (
    options.scope !== undefined &&
    (typeof options.scope !== 'string' ||
      options.scope.trim() === '' ||
      options.scope.length > 150 ||
      options.scope.includes('\u0000'))
  ) {
    throw new InvalidOptionError(
      `${where}.scope`,
      'a non-empty string of at most 150 characters, without U+0000',
      options.scope,
    );
  }
  const version = options.scopeVersion;
  if (
    version !== undefined &&
    !(typeof version === 'number'
      ? Number.isInteger(version) && version >= 0
      : /^[\w.-]{1,20}$/.test(String(version)))
  ) {
    throw new InvalidOptionError(
      `${where}.scopeVersion`,
      'a non-negative integer or a short [A-Za-z0-9_.-] string',
      version,
    );
  }
  if (
    options.fingerprint !== undefined &&
    options.fingerprint !== false &&
    typeof options.fingerprint !== 'function'
  ) {
    throw new InvalidOptionError(`${where}.fingerprint`, 'a function or false', options.fingerprint);
  }
  if (options.attempt !== undefined && typeof options.attempt !== 'function') {
    throw new InvalidOptionError(`${where}.attempt`, 'a function (message) => number', options.attempt);
  }
  validatePolicy(options, where, IDEMPOTENT_OPTIONS);
}

/** Fills in defaults: method options over module options over {@link DEFAULT_POLICY}. */
export function resolvePolicy(...layers: IdempotencyPolicyOptions[]): ResolvedPolicy {
  const merged: Record<string, unknown> = { ...DEFAULT_POLICY };
  for (const layer of layers) {
    for (const [k, v] of Object.entries(layer)) if (v !== undefined && k in DEFAULT_POLICY) merged[k] = v;
  }
  const policy = merged as Required<Omit<IdempotencyPolicyOptions, Derived>>;
  const last = (option: Derived) =>
    layers.reduce<number | undefined>((acc, l) => l[option] ?? acc, undefined);
  const resolved: ResolvedPolicy = {
    ...policy,
    keepAliveMs: last('keepAliveMs') ?? Math.max(1, Math.floor(policy.leaseMs / 3)),
    maxHandlerMs: last('maxHandlerMs') ?? Math.min(MAX_TIMER_MS, 5 * policy.leaseMs),
  };
  if (resolved.keepAliveMs >= resolved.leaseMs) {
    throw new InvalidOptionError(
      'keepAliveMs',
      `less than leaseMs (${resolved.leaseMs})`,
      resolved.keepAliveMs,
    );
  }
  return resolved;
}
