/**
 * The whole path of a message through the engine, top to bottom: key, cache, claim, handler with
 * keep-alive, fenced completion, cache write after commit, outcome. `@Idempotent` methods and
 * transports both end up in {@link IdempotencyHandler.execute}.
 */
import { randomUUID } from 'node:crypto';
import { backoffDelay } from './backoff.js';
import { type IdempotencyContext, isDeliveryInfo } from './context.js';
import {
  HandlerTimeoutError,
  IdempotencyError,
  IdempotencyInFlightError,
  IdempotencyStoreError,
  KeyFunctionError,
  LeaseLostError,
  MissingIdempotencyKeyError,
  PayloadConflictError,
  PayloadNotSerializableError,
  ResultNotSerializableError,
  type StoreStep,
  StoreUnavailableError,
} from './errors.js';
import { canonicalJson, fingerprint } from './fingerprint.js';
import { canonicalKey, tokenId } from './idempotency-key.js';
import type { HandlerMethod } from './model/handler-method.js';
import {
  type IdempotencyPolicyOptions,
  type IdempotentOptions,
  type ResolvedPolicy,
  resolvePolicy,
} from './options.js';
import type { DuplicateTier, IdempotencyOutcome, OutcomeListener } from './outcome.js';
import type { Clock } from './ports/clock.js';
import type { CachedCompletion, IdempotencyCache } from './ports/idempotency-cache.js';
import type {
  ClaimResult,
  IdempotencyRecord,
  IdempotencyStore,
  TokenRef,
} from './ports/idempotency-store.js';
import type { IdempotencyLogger } from './ports/logger.js';
import { scopeOf } from './scope.js';

export type { HandlerMethod } from './model/handler-method.js';

/** Everything the engine works with; the module builds it from the container's bindings. */
export interface IdempotencyHandlerDeps {
  readonly store: IdempotencyStore;
  readonly cache: IdempotencyCache;
  readonly clock: Clock;
  readonly logger: IdempotencyLogger;
  readonly defaults?: IdempotencyPolicyOptions;
  readonly listeners?: readonly OutcomeListener[];
}

/** What {@link IdempotencyHandler.execute} returns: the outcome, with the result to hand back. */
export interface Execution extends IdempotencyOutcome {
  /** The handler's result (`processed`, `takeover`) or the stored result (`duplicate`). */
  readonly result?: unknown;
}

/** A plan compiled once per method and engine: options resolved and validated, scope fixed. */
interface MethodPlan {
  readonly label: string;
  readonly scope: string;
  readonly policy: ResolvedPolicy;
  readonly options: IdempotentOptions<unknown>;
  readonly transactional: boolean;
  readonly fn: HandlerMethod['fn'];
}

/** Carries a handler's own throw through the store's transaction, so it is rethrown untouched. */
class HandlerFailure {
  constructor(readonly error: unknown) {}
}

/** Per call state that the steps share. */
interface Call {
  readonly plan: MethodPlan;
  readonly self: unknown;
  readonly message: unknown;
  readonly attempt: number;
  readonly maxAttempts: number | undefined;
  readonly started: number;
  cacheBypassed: boolean;
  handlerStarted: boolean;
  /** Transactions rerun after a transient failure (a deadlock, a serialization failure). */
  transientRetries: number;
  /** The cache was already read for this message (batch): its answer, a miss, or unreachable. */
  readonly prefetched: Prefetched;
  /** The message's key, already resolved (batch), so the key function runs once per message. */
  readonly key: KeyOutcome | undefined;
}

type Prefetched = CachedCompletion | 'miss' | 'bypassed' | undefined;

/** What the key function made of a message: a token, no usable key, or a throw. */
type KeyOutcome = { readonly token: TokenRef } | { readonly missing: string } | { readonly thrown: unknown };

type Decided = Omit<
  Execution,
  'handler' | 'scope' | 'attempt' | 'durationMs' | 'cacheBypassed' | 'transientRetries'
>;

/** Jittered pauses before a transaction is rerun after a transient failure. */
const TRANSIENT_BACKOFF = { initialMs: 10, maxMs: 250, jitter: 0.5 } as const;

export class IdempotencyHandler {
  private readonly plans = new WeakMap<object, Map<string | symbol, MethodPlan>>();
  private readonly defaults: IdempotencyPolicyOptions;

  constructor(private readonly deps: IdempotencyHandlerDeps) {
    this.defaults = deps.defaults ?? {};
    // Validates the module defaults at start-up, before any message arrives.
    resolvePolicy(this.defaults);
  }

  /** A method's options as the engine resolves them (module defaults under the method's own). */
  policyOf(target: HandlerMethod): ResolvedPolicy {
    return resolvePolicy(this.defaults, target.options as IdempotentOptions<unknown>);
  }

  /**
   * Runs one message through the engine and reports what became of it. Never throws for an outcome:
   * `failed`, `inFlight` and `conflict` come back as values ({@link IdempotencyHandler.invoke} turns
   * them into throws).
   */
  async execute(
    target: HandlerMethod,
    self: unknown,
    message: unknown,
    delivery?: unknown,
  ): Promise<Execution> {
    return this.run(this.plan(target, self), self, message, delivery, undefined);
  }

  /**
   * Runs a received batch: one cache round trip answers every duplicate in it, the rest run as in
   * {@link IdempotencyHandler.execute}. Copies of one token run one after another (the later ones meet the
   * completed record); distinct tokens run concurrently. Outcomes are aligned with `messages`.
   */
  async executeBatch(
    target: HandlerMethod,
    self: unknown,
    messages: readonly unknown[],
    deliveries: readonly unknown[] = [],
  ): Promise<Execution[]> {
    const plan = this.plan(target, self);
    const keys = messages.map((message) => this.resolveKey(plan, message));
    const tokens = keys.map((key) => ('token' in key ? key.token : undefined));
    const distinct = new Map<string, TokenRef>();
    for (const token of tokens) if (token) distinct.set(tokenId(token), token);
    let cached: Map<string, CachedCompletion | undefined> | undefined;
    try {
      const list = [...distinct.values()];
      const values =
        list.length > 0 ? await this.bounded(this.deps.cache.getMany(list), plan.policy.cacheTimeoutMs) : [];
      cached = new Map(list.map((token, i) => [tokenId(token), values[i]]));
    } catch (error) {
      this.deps.logger.debug('cache batch read failed; the store decides', { error: String(error) });
    }

    const groups = new Map<string, number[]>();
    tokens.forEach((token, i) => {
      const id = token ? tokenId(token) : `#${i}`;
      const group = groups.get(id);
      if (group) group.push(i);
      else groups.set(id, [i]);
    });
    const results = new Array<Execution>(messages.length);
    const pending: Promise<void>[] = [];
    for (const [id, indexes] of groups) {
      const hit = cached?.get(id);
      if (hit) {
        // A hit answers every copy, with nothing left to wait for: decided here, without a promise each.
        for (const i of indexes) {
          const call = this.newCall(plan, self, messages[i], deliveries[i], hit, keys[i]);
          results[i] = this.finish(call, this.decideFromCache(call, tokens[i] as TokenRef, hit));
        }
        continue;
      }
      pending.push(
        (async () => {
          for (const [n, i] of indexes.entries()) {
            // After a miss, later copies look again (the first may have completed).
            const prefetched: Prefetched = cached === undefined ? 'bypassed' : n === 0 ? 'miss' : undefined;
            results[i] = await this.run(plan, self, messages[i], deliveries[i], prefetched, keys[i]);
          }
        })(),
      );
    }
    await Promise.all(pending);
    return results;
  }

  private async run(
    plan: MethodPlan,
    self: unknown,
    message: unknown,
    delivery: unknown,
    prefetched: Prefetched,
    key?: KeyOutcome,
  ): Promise<Execution> {
    const call = this.newCall(plan, self, message, delivery, prefetched, key);
    return this.finish(call, await this.decide(call));
  }

  private newCall(
    plan: MethodPlan,
    self: unknown,
    message: unknown,
    delivery: unknown,
    prefetched: Prefetched,
    key: KeyOutcome | undefined,
  ): Call {
    const info = isDeliveryInfo(delivery) ? delivery : undefined;
    return {
      plan,
      self,
      message,
      attempt: info?.attempt ?? readAttempt(plan.options, message),
      maxAttempts: info?.maxAttempts,
      started: this.deps.clock.now(),
      cacheBypassed: prefetched === 'bypassed',
      handlerStarted: false,
      transientRetries: 0,
      prefetched,
      key,
    };
  }

  /** The outcome of a decided call, reported to the listeners. */
  private finish(call: Call, decided: Decided): Execution {
    const outcome: Execution = {
      handler: call.plan.label,
      scope: call.plan.scope,
      attempt: call.attempt,
      cacheBypassed: call.cacheBypassed,
      durationMs: this.deps.clock.now() - call.started,
      ...(call.transientRetries > 0 ? { transientRetries: call.transientRetries } : {}),
      ...decided,
    };
    this.emit(outcome);
    return outcome;
  }

  private resolveKey(plan: MethodPlan, message: unknown): KeyOutcome {
    try {
      const key = canonicalKey(plan.options.key(message), plan.policy.maxKeyLength);
      return 'key' in key ? { token: { scope: plan.scope, key: key.key } } : key;
    } catch (thrown) {
      return { thrown };
    }
  }

  /**
   * The path a decorated method takes: the handler's result on `processed`, the stored result on
   * `duplicate`; throws {@link IdempotencyInFlightError}, {@link PayloadConflictError}, a store error, or
   * the handler's own error otherwise, so that the broker redelivers.
   */
  async invoke(target: HandlerMethod, self: unknown, message: unknown, delivery?: unknown): Promise<unknown> {
    const outcome = await this.execute(target, self, message, delivery);
    switch (outcome.kind) {
      case 'processed':
      case 'takeover':
      case 'duplicate':
        return outcome.result;
      case 'inFlight':
        throw new IdempotencyInFlightError(outcome.token as TokenRef, outcome.record);
      default:
        throw outcome.error;
    }
  }

  private async decide(call: Call): Promise<Decided> {
    const { plan, message } = call;
    const key = call.key ?? this.resolveKey(plan, message);
    if ('thrown' in key) {
      return { kind: 'failed', unprotected: false, error: new KeyFunctionError(plan.scope, key.thrown) };
    }
    if ('missing' in key) {
      if (plan.policy.onMissingKey === 'process') return this.runUnprotected(call);
      return {
        kind: 'failed',
        unprotected: false,
        error: new MissingIdempotencyKeyError(plan.scope, key.missing),
      };
    }
    const { token } = key;

    // The cache read goes out first: the fingerprint is computed while it travels. (readCache never rejects.)
    const { prefetched } = call;
    const reading =
      prefetched === undefined
        ? this.readCache(call, token)
        : typeof prefetched === 'object'
          ? prefetched
          : undefined;

    const print = this.fingerprintOf(call, token);
    if (typeof print === 'object') return print;

    const cached = await reading;
    if (cached) return this.existing(call, token, print, 'cache', cached);

    for (;;) {
      try {
        const decided = plan.transactional
          ? await this.transaction((tx) => this.claimAndRun(call, token, print, tx))
          : await this.claimAndRun(call, token, print, undefined);
        if ((decided.kind === 'processed' || decided.kind === 'takeover') && decided.completion) {
          await this.writeCache(token, decided.completion, plan.policy);
        }
        const { completion: _completion, ...outcome } = decided;
        return outcome;
      } catch (failure) {
        const error = failure instanceof HandlerFailure ? failure.error : failure;
        if (await this.rerunAfterTransient(call, error)) continue;
        if (failure instanceof HandlerFailure) return { kind: 'failed', token, unprotected: false, error };
        // Fail-open only while the handler has not run: after it, a rerun would repeat its effect.
        if (
          failure instanceof StoreUnavailableError &&
          plan.policy.onStoreUnavailable === 'failOpen' &&
          !call.handlerStarted
        ) {
          this.deps.logger.warn('store unavailable: running the handler unprotected (failOpen)', {
            handler: plan.label,
            key: token.key,
          });
          return this.runUnprotected(call, token);
        }
        return { kind: 'failed', token, unprotected: false, error: failure };
      }
    }
  }

  /**
   * After a failed attempt: whether to run it again at once, because the store says the failure was
   * transient (a deadlock, a serialization failure) and what ran can be undone (the whole transaction,
   * or a claim whose handler never started). Waits a jittered moment first, so that the two sides of a
   * deadlock do not meet again.
   */
  private async rerunAfterTransient(call: Call, error: unknown): Promise<boolean> {
    const { store, clock } = this.deps;
    if (call.transientRetries >= call.plan.policy.transientRetries) return false;
    if (!call.plan.transactional && call.handlerStarted) return false;
    if (!store.isTransient?.(error)) return false;
    call.transientRetries++;
    call.handlerStarted = false;
    const pause = backoffDelay(TRANSIENT_BACKOFF, call.transientRetries);
    await new Promise<void>((resolve) => clock.setTimeout(resolve, pause));
    return true;
  }

  /** The payload's fingerprint, or the failure to report when it cannot be serialised. */
  private fingerprintOf(call: Call, token: TokenRef): string | undefined | Decided {
    try {
      return payloadFingerprint(call.plan.options, call.message);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      return {
        kind: 'failed',
        token,
        unprotected: false,
        error: new PayloadNotSerializableError(call.plan.scope, reason),
      };
    }
  }

  /** A batch's copy whose token the cache knows: a duplicate (or a conflict), decided synchronously. */
  private decideFromCache(call: Call, token: TokenRef, cached: CachedCompletion): Decided {
    const print = this.fingerprintOf(call, token);
    if (typeof print === 'object') return print;
    return this.existing(call, token, print, 'cache', cached);
  }

  /** Claim, run, complete; inside the store's transaction when `tx` is given. */
  private async claimAndRun(
    call: Call,
    token: TokenRef,
    print: string | undefined,
    tx: unknown,
  ): Promise<Decided & { completion?: CachedCompletion }> {
    const { plan } = call;
    const { store } = this.deps;
    const owner = randomUUID();
    const claim: ClaimResult = await this.storeCall('claim', token, () =>
      store.claim(
        {
          token,
          owner,
          leaseMs: plan.policy.leaseMs,
          fingerprint: print,
          ttlMs: tx === undefined ? undefined : plan.policy.ttlMs,
        },
        tx,
      ),
    );
    if (claim.status === 'exists') {
      if (claim.record.status === 'completed')
        return this.existing(call, token, print, 'store', claim.record);
      if (conflicting(claim.record.fingerprint, print))
        return this.conflict(call, token, print, claim.record);
      return { kind: 'inFlight', token, unprotected: false, record: claim.record };
    }

    const ctx: IdempotencyContext = {
      token,
      attempt: call.attempt,
      replay: claim.takeover || call.attempt > 1 || call.transientRetries > 0,
      takeover: claim.takeover,
      fence: claim.record.fence,
      trx: tx,
      unprotected: false,
    };
    const { policy } = plan;
    const keepAlive = policy.keepAlive ? this.keepAlive(token, owner, policy, tx) : undefined;
    const bound = policy.keepAlive ? policy.maxHandlerMs : policy.leaseMs;
    let result: unknown;
    try {
      call.handlerStarted = true;
      // Past the bound the handler is given up on; what it does later is not waited for.
      result = await this.bounded(
        Promise.resolve(plan.fn.call(call.self, call.message, ctx)),
        bound,
        () => new HandlerTimeoutError(token, bound),
      );
    } catch (error) {
      keepAlive?.stop();
      if (tx !== undefined) throw new HandlerFailure(error); // the rollback releases the claim
      if (error instanceof HandlerTimeoutError) {
        // The handler may still be running and reach its effect: the claim stays until its lease runs
        // out, so that the next copy takes it over (fenced) rather than running beside it.
        return { kind: 'failed', token, unprotected: false, error };
      }
      return {
        kind: 'failed',
        token,
        unprotected: false,
        error,
        releaseError: await this.release(call, token, owner),
      };
    }
    keepAlive?.stop();

    let stored: string | undefined;
    if (plan.policy.storeResult && result !== undefined) {
      try {
        stored = canonicalJson(result);
      } catch (error) {
        const failure = new ResultNotSerializableError(
          token,
          error instanceof Error ? error.message : String(error),
        );
        // In a transaction nothing has happened yet: roll back. In lease mode the effect is done and must
        // not run again, so the record completes without its result.
        if (tx !== undefined) throw new HandlerFailure(failure);
        this.deps.logger.error(failure.message, { handler: plan.label });
      }
    }
    const completed = await this.storeCall('complete', token, () =>
      store.complete({ token, owner, ttlMs: plan.policy.ttlMs, result: stored }, tx),
    );
    if (!completed) {
      const lost = new LeaseLostError(token, owner);
      if (tx !== undefined) throw new HandlerFailure(lost);
      return { kind: 'failed', token, unprotected: false, error: lost };
    }
    return {
      kind: claim.takeover ? 'takeover' : 'processed',
      token,
      unprotected: false,
      result,
      completion: { fingerprint: print, result: stored },
    };
  }

  /** A completed record (from the cache or the store): a duplicate, unless the payload differs. */
  private existing(
    call: Call,
    token: TokenRef,
    print: string | undefined,
    tier: DuplicateTier,
    found: CachedCompletion | IdempotencyRecord,
  ): Decided {
    const record = 'status' in found ? (found as IdempotencyRecord) : undefined;
    if (conflicting(found.fingerprint, print))
      return this.conflict(call, token, print, record, found.fingerprint);
    return { kind: 'duplicate', token, tier, unprotected: false, record, result: parseResult(found.result) };
  }

  private conflict(
    call: Call,
    token: TokenRef,
    print: string | undefined,
    record: IdempotencyRecord | undefined,
    expected = record?.fingerprint,
  ): Decided {
    const error = new PayloadConflictError(token, expected, print, record);
    if (call.plan.policy.onConflict === 'duplicate') {
      // Accepted as a duplicate; but a copy still in flight may yet fail, so it is never acked early.
      if (record?.status === 'inProgress') return { kind: 'inFlight', token, unprotected: false, record };
      return {
        kind: 'duplicate',
        token,
        tier: record ? 'store' : 'cache',
        unprotected: false,
        record,
        error,
      };
    }
    return { kind: 'conflict', token, unprotected: false, record, error };
  }

  private async runUnprotected(call: Call, token?: TokenRef): Promise<Decided> {
    const ctx: IdempotencyContext = {
      token: token ?? { scope: call.plan.scope, key: '' },
      attempt: call.attempt,
      replay: call.attempt > 1,
      takeover: false,
      fence: 0,
      trx: undefined,
      unprotected: true,
    };
    try {
      const result = await call.plan.fn.call(call.self, call.message, ctx);
      return { kind: 'processed', token, unprotected: true, result };
    } catch (error) {
      return { kind: 'failed', token, unprotected: true, error };
    }
  }

  private async transaction<T>(work: (tx: unknown) => Promise<T>): Promise<T> {
    const { store } = this.deps;
    try {
      return await (store.transaction as NonNullable<IdempotencyStore['transaction']>)(work);
    } catch (error) {
      // Errors from our own steps and the handler pass through; the rest is begin/commit failing.
      if (error instanceof HandlerFailure || error instanceof IdempotencyError) throw error;
      throw new IdempotencyStoreError('transaction', undefined, error);
    }
  }

  /** Renews the lease while the handler runs, so a slow but live handler is not taken over. */
  private keepAlive(token: TokenRef, owner: string, policy: ResolvedPolicy, tx: unknown): { stop(): void } {
    const { clock, store, logger } = this.deps;
    let timer: unknown;
    let stopped = false;
    const tick = (): void => {
      store.renew(token, owner, policy.leaseMs, tx).then(
        (held) => {
          if (!held) {
            logger.warn('lease lost while the handler ran; its completion will be refused', {
              key: token.key,
            });
            stopped = true;
          }
          if (!stopped) timer = clock.setTimeout(tick, policy.keepAliveMs);
        },
        (error: unknown) => {
          logger.warn('lease renewal failed; retrying', { key: token.key, error: String(error) });
          if (!stopped) timer = clock.setTimeout(tick, policy.keepAliveMs);
        },
      );
    };
    timer = clock.setTimeout(tick, policy.keepAliveMs);
    return {
      stop: () => {
        stopped = true;
        clock.clearTimeout(timer);
      },
    };
  }

  /** Lease mode, after a failed handler: releases the claim unless the policy keeps it. */
  private async release(call: Call, token: TokenRef, owner: string): Promise<unknown> {
    const { onFailure } = call.plan.policy;
    const final = call.maxAttempts !== undefined && call.attempt >= call.maxAttempts;
    if (onFailure === 'keep' || (onFailure === 'keepOnFinalAttempt' && final)) return undefined;
    try {
      await this.storeCall('release', token, () => this.deps.store.release(token, owner));
      return undefined;
    } catch (error) {
      this.deps.logger.error('could not release a failed claim; it stays until its lease expires', {
        key: token.key,
        error: String(error),
      });
      return error;
    }
  }

  /** Calls the store; anything it throws becomes a store error that names the step. */
  private async storeCall<T>(step: StoreStep, token: TokenRef, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      if (error instanceof IdempotencyStoreError || error instanceof IdempotencyError) throw error;
      throw new IdempotencyStoreError(step, token, error);
    }
  }

  private async readCache(call: Call, token: TokenRef): Promise<CachedCompletion | undefined> {
    try {
      return await this.bounded(this.deps.cache.get(token), call.plan.policy.cacheTimeoutMs);
    } catch (error) {
      call.cacheBypassed = true;
      this.deps.logger.debug('cache read failed; the store decides', {
        key: token.key,
        error: String(error),
      });
      return undefined;
    }
  }

  private async writeCache(
    token: TokenRef,
    completion: CachedCompletion,
    policy: ResolvedPolicy,
  ): Promise<void> {
    try {
      // Bounded like a read: a hung cache must not hold the message once the store has committed.
      await this.bounded(this.deps.cache.set(token, completion, policy.ttlMs), policy.cacheTimeoutMs);
    } catch (error) {
      // The store has committed: the cache is only an optimisation.
      this.deps.logger.debug('cache write failed', { key: token.key, error: String(error) });
    }
  }

  /** `promise`, or a rejection with `timeout()` after `ms` (a later settlement of `promise` is ignored). */
  private bounded<T>(
    promise: Promise<T>,
    ms: number,
    timeout: () => unknown = () => new Error(`timed out after ${ms} ms`),
  ): Promise<T> {
    const { clock } = this.deps;
    return new Promise<T>((resolve, reject) => {
      const timer = clock.setTimeout(() => reject(timeout()), ms);
      promise.then(
        (value) => {
          clock.clearTimeout(timer);
          resolve(value);
        },
        (error: unknown) => {
          clock.clearTimeout(timer);
          reject(error);
        },
      );
    });
  }

  private emit(outcome: IdempotencyOutcome): void {
    for (const listener of this.deps.listeners ?? []) {
      try {
        listener(outcome);
      } catch (error) {
        this.deps.logger.error('an outcome listener threw', { error: String(error) });
      }
    }
  }

  /** Resolves and validates a method's options once per engine. */
  private plan(target: HandlerMethod, self: unknown): MethodPlan {
    const runtime = (self as object | null)?.constructor ?? target.ctor;
    let byMethod = this.plans.get(runtime);
    if (!byMethod) {
      byMethod = new Map();
      this.plans.set(runtime, byMethod);
    }
    const known = byMethod.get(target.method);
    if (known) return known;

    const options = target.options as IdempotentOptions<unknown>;
    const label = `${target.ctor.name}.${String(target.method)}`;
    const policy = resolvePolicy(this.defaults, options);
    if (policy.mode === 'transactional' && !this.deps.store.transaction) {
      throw new IdempotencyStoreError(
        'transaction',
        undefined,
        new Error(`${label} asks for mode 'transactional' but the bound store has no transactions`),
      );
    }
    const plan: MethodPlan = {
      label,
      scope: scopeOf(runtime as HandlerMethod['ctor'], target.ctor, target.method, target.options),
      policy,
      options,
      transactional: policy.mode !== 'lease' && this.deps.store.transaction !== undefined,
      fn: target.fn,
    };
    byMethod.set(target.method, plan);
    return plan;
  }
}

function conflicting(stored: string | undefined, incoming: string | undefined): boolean {
  return stored !== undefined && incoming !== undefined && stored !== incoming;
}

function parseResult(text: string | undefined): unknown {
  return text === undefined ? undefined : JSON.parse(text);
}

function payloadFingerprint(options: IdempotentOptions<unknown>, message: unknown): string | undefined {
  if (options.fingerprint === false) return undefined;
  if (options.fingerprint) return fingerprint(options.fingerprint(message));
  if (typeof message === 'object' && message !== null && 'body' in message) {
    const body = (message as { body: unknown }).body;
    return body === undefined ? undefined : fingerprint(body);
  }
  return undefined;
}

function readAttempt(options: IdempotentOptions<unknown>, message: unknown): number {
  const raw = options.attempt
    ? options.attempt(message)
    : typeof message === 'object' && message !== null
      ? (message as { deliveryAttempt?: unknown }).deliveryAttempt
      : undefined;
  return typeof raw === 'number' && Number.isInteger(raw) && raw >= 1 ? raw : 1;
}
