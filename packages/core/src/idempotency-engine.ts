/**
 * The whole path of a message through the engine, top to bottom, in the order a message meets it:
 * key, cache, claim (in the store's transaction when there is one), handler under its bound with the
 * lease kept alive, fenced completion, cache write after commit, outcome. `@Idempotent` methods and the
 * listener registry both end up here.
 */
import { randomUUID } from 'node:crypto';
import { backoffDelay } from './backoff.js';
import { type IdempotencyContext, isDeliveryInfo } from './context.js';
import { Deadlines } from './engine/deadlines.js';
import { LeaseKeeper } from './engine/lease-keeper.js';
import { type MethodPlan, MethodPlans } from './engine/method-plan.js';
import { ProbeReports } from './engine/probe-reports.js';
import {
  HandlerTimeoutError,
  IdempotencyError,
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
import type { IdempotencyRecord, TokenRef } from './model/record.js';
import {
  type IdempotencyPolicyOptions,
  type IdempotentOptions,
  type ResolvedPolicy,
  resolvePolicy,
} from './options.js';
import type { DuplicateTier, Execution, IdempotencyOutcome, OutcomeListener } from './outcome.js';
import type { Clock } from './ports/clock.js';
import type { CachedCompletion, IdempotencyCache } from './ports/idempotency-cache.js';
import type { ClaimResult, IdempotencyStore } from './ports/idempotency-store.js';
import type { IdempotencyInstrumentation, MessageProbe, StepOperation } from './ports/instrumentation.js';
import type { IdempotencyLogger } from './ports/logger.js';

export type { HandlerMethod } from './model/handler-method.js';
export type { Execution } from './outcome.js';

/** Everything the engine works with; the module builds it from the container's bindings. */
export interface IdempotencyEngineDeps {
  readonly store: IdempotencyStore;
  readonly cache: IdempotencyCache;
  readonly clock: Clock;
  readonly logger: IdempotencyLogger;
  readonly defaults?: IdempotencyPolicyOptions;
  readonly listeners?: readonly OutcomeListener[];
  /** Traces and metrics of each message; none by default. */
  readonly instrumentation?: IdempotencyInstrumentation;
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
  /** The instrumentation's view of this message, when one is bound and wants it. */
  readonly probe: MessageProbe | undefined;
  /** A processed message's entry, for the cache to learn once the store has committed. */
  completion: CachedCompletion | undefined;
}

/** What the key function made of a message: a token, no usable key, or a throw. */
type KeyOutcome = { readonly token: TokenRef } | { readonly missing: string } | { readonly thrown: unknown };

/** A step's answer: the outcome without what {@link IdempotencyEngine.finish} adds. */
type Decided = Omit<
  Execution,
  'handler' | 'scope' | 'attempt' | 'durationMs' | 'cacheBypassed' | 'transientRetries'
>;

/** Carries a handler's own throw through the store's transaction, so it is rethrown untouched. */
class HandlerFailure {
  constructor(readonly error: unknown) {}
}

/** Jittered pauses before a transaction is rerun after a transient failure. */
const TRANSIENT_BACKOFF = { initialMs: 10, maxMs: 250, jitter: 0.5 } as const;

/**
 * The idempotency engine. One per container ({@link IdempotencyModule} binds it); stateless between
 * calls but for the method plans it keeps.
 */
export class IdempotencyEngine {
  private readonly plans: MethodPlans;
  /** The cache's last call failed: its failures are warned about once, and its recovery once. */
  private cacheDown = false;
  private readonly defaults: IdempotencyPolicyOptions;
  /**
   * Cache writes sent and not yet answered, by token: the store has committed them, so a copy that comes
   * meanwhile is answered from here, as the cache will answer it (a read may overtake a write on its way).
   */
  private readonly writing = new Map<string, CachedCompletion>();
  /** What the instrumentation hears of each message (see engine/probe-reports.ts). */
  private readonly reports: ProbeReports;
  /** The handlers' bounds and the leases' renewals, on the injected clock: one timer per length. */
  private readonly deadlines: Deadlines;

  constructor(private readonly deps: IdempotencyEngineDeps) {
    this.defaults = deps.defaults ?? {};
    this.deadlines = new Deadlines(deps.clock);
    this.reports = new ProbeReports(deps.instrumentation, deps.logger);
    // Validates the module defaults at start-up, before any message arrives.
    resolvePolicy(this.defaults);
    this.plans = new MethodPlans(this.defaults, deps.store);
  }

  /**
   * Runs one message through the engine and reports what became of it, in this order:
   *
   * 1. the **key** → a token (a message without one fails, or runs unprotected by policy);
   * 2. the **cache** read goes out, and the payload is fingerprinted while it travels; a hit → duplicate;
   * 3. the **claim** in the store (inside the store's transaction in transactional mode): completed →
   *    duplicate, a live claim → in flight, another payload → conflict, an expired claim → takeover;
   * 4. the **handler**, its lease renewed, for at most `maxHandlerMs`;
   * 5. the fenced **completion** (and the commit); a transient failure reruns 3–5 in place;
   * 6. the **cache write**, after the commit, sent and not waited for (bounded by `cacheTimeoutMs`);
   * 7. the **outcome**, to every outcome listener.
   *
   * Never throws for an outcome: `failed`, `inFlight` and `conflict` come back as values (the
   * decorator turns them into throws).
   */
  async execute(
    target: HandlerMethod,
    self: unknown,
    message: unknown,
    delivery?: unknown,
  ): Promise<Execution> {
    const plan = this.plans.of(target, self);
    const call = this.newCall(plan, self, message, delivery);
    const key = this.resolveKey(plan, message);
    // Without a probe, no closure: the path is called as it is.
    const decided = call.probe ? call.probe.run(() => this.decide(call, key)) : this.decide(call, key);
    return this.finish(call, await decided);
  }

  /**
   * Runs a received batch: one cache round trip answers every duplicate in it, the rest run as in
   * {@link IdempotencyEngine.execute}. Copies of one token run one after another (the later ones meet the
   * completed record); distinct tokens run concurrently. Outcomes are aligned with `messages`.
   */
  async executeBatch(
    target: HandlerMethod,
    self: unknown,
    messages: readonly unknown[],
    deliveries: readonly unknown[] = [],
  ): Promise<Execution[]> {
    const plan = this.plans.of(target, self);
    const calls = new Array<Call>(messages.length);
    const keys = new Array<KeyOutcome>(messages.length);
    const groups = new TokenGroups();
    // One reading of the clock for the batch: its messages were received together.
    const received = this.deps.clock.now();
    for (let i = 0; i < messages.length; i++) {
      const message = messages[i];
      calls[i] = this.newCall(plan, self, message, deliveries[i], received);
      const key = this.resolveKey(plan, message);
      keys[i] = key;
      groups.add(i, 'token' in key ? key.token : undefined);
    }
    const cached = await this.readCacheBatch(plan, groups, calls);

    const results = new Array<Execution>(messages.length);
    const pending: Promise<void>[] = [];
    // The hits are all decided in this loop, synchronously: one reading of the clock for them.
    const answered = this.deps.clock.now();
    for (let g = 0; g < groups.members.length; g++) {
      const indexes = groups.members[g] as number[];
      const token = groups.tokens[g];
      if (cached === undefined) for (const i of indexes) (calls[i] as Call).cacheBypassed = true;
      const hit = token && cached?.[g];
      if (token && hit) {
        // A hit answers every copy, with nothing left to wait for: decided here, without a promise each.
        for (const i of indexes) {
          const call = calls[i] as Call;
          results[i] = this.finish(call, this.fromCacheHit(call, token, hit), answered);
        }
        continue;
      }
      pending.push(
        (async () => {
          for (let n = 0; n < indexes.length; n++) {
            const i = indexes[n] as number;
            const call = calls[i] as Call;
            const key = keys[i] as KeyOutcome;
            // The batch read answered the first copy (a miss, or the cache is out of reach); the later
            // ones look again, since the first may have completed meanwhile.
            const decided = this.within(call, () =>
              token && (n === 0 || cached === undefined)
                ? this.decideToken(call, token, undefined)
                : this.decide(call, key),
            );
            results[i] = this.finish(call, await decided);
          }
        })(),
      );
    }
    await Promise.all(pending);
    return results;
  }

  /** A method's options as the engine resolves them (module defaults under the method's own). */
  policyOf(target: HandlerMethod): ResolvedPolicy {
    return resolvePolicy(this.defaults, target.options as IdempotentOptions<unknown>);
  }

  private newCall(
    plan: MethodPlan,
    self: unknown,
    message: unknown,
    delivery: unknown,
    started = this.deps.clock.now(),
  ): Call {
    const info = isDeliveryInfo(delivery) ? delivery : undefined;
    return {
      plan,
      self,
      message,
      attempt: info?.attempt ?? readAttempt(plan.options, message),
      maxAttempts: info?.maxAttempts,
      started,
      cacheBypassed: false,
      handlerStarted: false,
      transientRetries: 0,
      probe: this.deps.instrumentation && this.reports.probeOf(plan, message, info),
      completion: undefined,
    };
  }

  /** A message's path, inside its probe's context (its trace span) when it has one. */
  private within(call: Call, path: () => Promise<Decided>): Promise<Decided> {
    return call.probe ? call.probe.run(path) : path();
  }

  // ---- 1. the key ----------------------------------------------------------------------------

  private resolveKey(plan: MethodPlan, message: unknown): KeyOutcome {
    try {
      const key = canonicalKey(plan.options.key(message), plan.policy.maxKeyLength);
      return 'key' in key ? { token: { scope: plan.scope, key: key.key } } : key;
    } catch (thrown) {
      return { thrown };
    }
  }

  /** A message's path from its key: a keyless one fails (or runs unprotected); the rest go on. */
  private decide(call: Call, key: KeyOutcome): Promise<Decided> {
    const { plan } = call;
    if ('thrown' in key) {
      const error = new KeyFunctionError(plan.scope, key.thrown);
      return Promise.resolve({ kind: 'failed', unprotected: false, error });
    }
    if ('missing' in key) {
      if (plan.policy.onMissingKey === 'process') return this.runUnprotected(call);
      const error = new MissingIdempotencyKeyError(plan.scope, key.missing);
      return Promise.resolve({ kind: 'failed', unprotected: false, error });
    }
    // The cache read goes out first: the fingerprint is computed while it travels.
    return this.decideToken(call, key.token, this.readCache(call, key.token));
  }

  // ---- 2. the cache --------------------------------------------------------------------------

  /**
   * A message with a token, given what the cache says of it: `cached` is the read under way, or
   * `undefined` when the cache has already answered "not known" (a batch's miss, an unreachable cache).
   */
  private async decideToken(
    call: Call,
    token: TokenRef,
    cached: Promise<CachedCompletion | undefined> | undefined,
  ): Promise<Decided> {
    const print = this.fingerprintOf(call, token);
    if (typeof print === 'object') return print;
    const hit = await cached;
    if (hit) return this.existing(call, token, print, 'cache', hit);
    // Awaited, not returned: an async function that returns a promise adopts it two ticks later.
    return await this.fromStore(call, token, print);
  }

  /** Never rejects: an unreachable or slow cache is skipped, and the store decides. */
  private async readCache(call: Call, token: TokenRef): Promise<CachedCompletion | undefined> {
    // A write on its way answers for the cache (unless the cache is down: then the store decides).
    if (this.writing.size > 0 && !this.cacheDown) {
      const written = this.writing.get(tokenId(token));
      if (written) return written;
    }
    const started = call.probe ? performance.now() : 0;
    try {
      const hit = await this.bounded(this.deps.cache.get(token), call.plan.policy.cacheTimeoutMs);
      if (call.probe) this.reports.step(call.probe, 'cache', 'get', started);
      if (this.cacheDown) this.cacheAnswered();
      return hit;
    } catch (error) {
      if (call.probe) this.reports.step(call.probe, 'cache', 'get', started, error);
      this.cacheFailed(error);
      call.cacheBypassed = true;
      this.deps.logger.debug('cache read failed; the store decides', {
        key: token.key,
        error: String(error),
      });
      return undefined;
    }
  }

  /**
   * A batch's tokens in one cache round trip: what the cache knows of each group's token (by group;
   * undefined for a keyless one), or `undefined` when the cache could not answer.
   */
  private async readCacheBatch(
    plan: MethodPlan,
    groups: TokenGroups,
    calls: readonly Call[],
  ): Promise<(CachedCompletion | undefined)[] | undefined> {
    const list = groups.distinct;
    const started = this.deps.instrumentation && list.length > 0 ? performance.now() : undefined;
    try {
      const values =
        list.length > 0 ? await this.bounded(this.deps.cache.getMany(list), plan.policy.cacheTimeoutMs) : [];
      if (started !== undefined)
        this.reports.batchStep(
          calls.map((c) => c.probe),
          started,
        );
      if (this.cacheDown && list.length > 0) this.cacheAnswered();
      const byGroup = new Array<CachedCompletion | undefined>(groups.tokens.length);
      for (let g = 0, d = 0; g < groups.tokens.length; g++) {
        const token = groups.tokens[g];
        if (token === undefined) continue;
        const value = values[d++];
        byGroup[g] = value ?? (this.writing.size > 0 ? this.writing.get(tokenId(token)) : undefined);
      }
      return byGroup;
    } catch (error) {
      if (started !== undefined)
        this.reports.batchStep(
          calls.map((c) => c.probe),
          started,
          error,
        );
      this.cacheFailed(error);
      this.deps.logger.debug('cache batch read failed; the store decides', { error: String(error) });
      return undefined;
    }
  }

  /** A batch's copy whose token the cache knows: a duplicate (or a conflict), decided synchronously. */
  private fromCacheHit(call: Call, token: TokenRef, hit: CachedCompletion): Decided {
    const print = this.fingerprintOf(call, token);
    if (typeof print === 'object') return print;
    return this.existing(call, token, print, 'cache', hit);
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

  // ---- 3–6. the store: claim, handler, completion, then the cache write ----------------------

  /**
   * Claims, runs and completes, inside the store's transaction in transactional mode; reruns all of it
   * after a transient failure; writes the cache once the store has committed.
   */
  private async fromStore(call: Call, token: TokenRef, print: string | undefined): Promise<Decided> {
    const { plan } = call;
    for (;;) {
      try {
        call.completion = undefined;
        const decided = plan.transactional
          ? await this.transaction(call, (tx) => this.claimAndRun(call, token, print, tx))
          : await this.claimAndRun(call, token, print, undefined);
        // Not waited for: the store has committed, and the cache only spares a later copy the store.
        if (call.completion) void this.writeCache(call, token, call.completion);
        return decided;
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
          return await this.runUnprotected(call, token);
        }
        return { kind: 'failed', token, unprotected: false, error: failure };
      }
    }
  }

  private async transaction<T>(call: Call, work: (tx: unknown) => Promise<T>): Promise<T> {
    const run = (work: (tx: unknown) => Promise<T>) =>
      (this.deps.store.transaction as NonNullable<IdempotencyStore['transaction']>)(work);
    try {
      return await (call.probe ? this.reports.transaction(call.probe, run, work) : run(work));
    } catch (error) {
      // Errors from our own steps and the handler pass through; the rest is begin/commit failing.
      if (error instanceof HandlerFailure || error instanceof IdempotencyError) throw error;
      throw new IdempotencyStoreError('transaction', undefined, error);
    }
  }

  /** Claim, run, complete; inside the store's transaction when `tx` is given. */
  private async claimAndRun(
    call: Call,
    token: TokenRef,
    print: string | undefined,
    tx: unknown,
  ): Promise<Decided> {
    const { plan } = call;
    const { store } = this.deps;
    const owner = randomUUID();
    const claim: ClaimResult = await this.storeCall(call, 'claim', token, () =>
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

    const ran = await this.runHandler(call, token, owner, claim, tx);
    if ('failed' in ran) return ran.failed;
    const stored = this.resultToStore(call, token, ran.result, tx);
    const completed = await this.storeCall(call, 'complete', token, () =>
      store.complete({ token, owner, ttlMs: plan.policy.ttlMs, result: stored }, tx),
    );
    if (!completed) {
      const lost = new LeaseLostError(token, owner);
      if (tx !== undefined) throw new HandlerFailure(lost);
      return { kind: 'failed', token, unprotected: false, error: lost };
    }
    // What the cache learns once the store has committed (fromStore writes it).
    call.completion = { fingerprint: print, result: stored };
    return {
      kind: claim.takeover ? 'takeover' : 'processed',
      token,
      unprotected: false,
      fence: claim.record.fence,
      result: ran.result,
    };
  }

  /**
   * The user's handler under its bound (`maxHandlerMs`, or one lease without keep-alive), its lease
   * renewed meanwhile. A throw in a transaction rolls it back (the claim goes with it); in lease mode a
   * failed claim is released by policy, and a hung one is left to expire.
   */
  private async runHandler(
    call: Call,
    token: TokenRef,
    owner: string,
    claim: ClaimResult & { status: 'claimed' },
    tx: unknown,
  ): Promise<{ result: unknown } | { failed: Decided }> {
    const { policy } = call.plan;
    const ctx: IdempotencyContext = {
      token,
      attempt: call.attempt,
      replay: claim.takeover || call.attempt > 1 || call.transientRetries > 0,
      takeover: claim.takeover,
      fence: claim.record.fence,
      trx: tx,
      unprotected: false,
    };
    const keeper = policy.keepAlive
      ? new LeaseKeeper(this.deps, this.deadlines, token, owner, policy, tx).start()
      : undefined;
    const bound = policy.keepAlive ? policy.maxHandlerMs : policy.leaseMs;
    try {
      call.handlerStarted = true;
      // Past the bound the handler is given up on; what it does later is not waited for.
      const running = Promise.resolve(call.plan.fn.call(call.self, call.message, ctx));
      return {
        result: await this.deadlines.bound(running, bound, () => new HandlerTimeoutError(token, bound)),
      };
    } catch (error) {
      if (tx !== undefined) throw new HandlerFailure(error); // the rollback releases the claim
      // A hung handler may still reach its effect: its claim stays until the lease runs out, so that
      // the next copy takes it over (fenced) rather than running beside it.
      if (error instanceof HandlerTimeoutError)
        return { failed: { kind: 'failed', token, unprotected: false, error } };
      const releaseError = await this.release(call, token, owner);
      return { failed: { kind: 'failed', token, unprotected: false, error, releaseError } };
    } finally {
      keeper?.stop();
    }
  }

  /**
   * The handler's result as the store keeps it, with `storeResult`. One that JSON cannot hold rolls a
   * transaction back (nothing has happened yet); in lease mode the effect is done and must not run
   * again, so the record completes without its result.
   */
  private resultToStore(call: Call, token: TokenRef, result: unknown, tx: unknown): string | undefined {
    if (!call.plan.policy.storeResult || result === undefined) return undefined;
    try {
      return canonicalJson(result);
    } catch (error) {
      const failure = new ResultNotSerializableError(
        token,
        error instanceof Error ? error.message : String(error),
      );
      if (tx !== undefined) throw new HandlerFailure(failure);
      this.deps.logger.error(failure.message, { handler: call.plan.label });
      return undefined;
    }
  }

  /** Lease mode, after a failed handler: releases the claim unless the policy keeps it. */
  private async release(call: Call, token: TokenRef, owner: string): Promise<unknown> {
    const { onFailure } = call.plan.policy;
    const final = call.maxAttempts !== undefined && call.attempt >= call.maxAttempts;
    if (onFailure === 'keep' || (onFailure === 'keepOnFinalAttempt' && final)) return undefined;
    try {
      await this.storeCall(call, 'release', token, () => this.deps.store.release(token, owner));
      return undefined;
    } catch (error) {
      this.deps.logger.error('could not release a failed claim; it stays until its lease expires', {
        key: token.key,
        error: String(error),
      });
      return error;
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

  /** Calls the store; anything it throws becomes a store error that names the step. */
  private async storeCall<T>(
    call: Call,
    step: StoreStep & StepOperation,
    token: TokenRef,
    fn: () => Promise<T>,
  ): Promise<T> {
    const started = call.probe ? performance.now() : 0;
    try {
      const value = await fn();
      if (call.probe) this.reports.step(call.probe, 'store', step, started);
      return value;
    } catch (error) {
      if (call.probe) this.reports.step(call.probe, 'store', step, started, error);
      if (error instanceof IdempotencyStoreError || error instanceof IdempotencyError) throw error;
      throw new IdempotencyStoreError(step, token, error);
    }
  }

  /**
   * A cache call bounded by `cacheTimeoutMs` (on the shared deadlines: no timer of its own), unless the
   * cache is in this process (`inProcess`): nothing to hang on.
   */
  private bounded<T>(work: Promise<T>, ms: number): Promise<T> {
    if (this.deps.cache.inProcess) return work;
    return this.deadlines.bound(work, ms, () => new Error(`timed out after ${ms} ms`));
  }

  /** Sent once the store has committed, and not waited for: see {@link IdempotencyEngine.writing}. */
  private async writeCache(call: Call, token: TokenRef, completion: CachedCompletion): Promise<void> {
    const { policy } = call.plan;
    const started = call.probe ? performance.now() : 0;
    // An in-process cache has taken the write when `set` returns: no read can overtake it.
    const id = this.deps.cache.inProcess ? undefined : tokenId(token);
    if (id !== undefined) this.writing.set(id, completion);
    try {
      // Bounded like a read: a hung cache must not keep a write pending for ever.
      await this.bounded(this.deps.cache.set(token, completion, policy.ttlMs), policy.cacheTimeoutMs);
      if (call.probe) this.reports.step(call.probe, 'cache', 'set', started);
      if (this.cacheDown) this.cacheAnswered();
    } catch (error) {
      if (call.probe) this.reports.step(call.probe, 'cache', 'set', started, error);
      this.cacheFailed(error);
      // The store has committed: the cache is only an optimisation.
      this.deps.logger.debug('cache write failed', { key: token.key, error: String(error) });
    } finally {
      if (id !== undefined && this.writing.get(id) === completion) this.writing.delete(id);
    }
  }

  /** The cache failed: said once (a warning), until it answers again; each failure in between is a debug line. */
  private cacheFailed(error: unknown): void {
    if (this.cacheDown) return;
    this.cacheDown = true;
    this.deps.logger.warn(
      'the cache is out of reach: the store decides every message until it answers again',
      {
        error: String(error),
      },
    );
  }

  private cacheAnswered(): void {
    this.cacheDown = false;
    this.deps.logger.warn('the cache answers again');
  }

  /** The handler without a claim: a keyless message by policy, or the store out of reach with fail-open. */
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

  // ---- 7. the outcome ------------------------------------------------------------------------

  /** The outcome of a decided call, reported to the listeners. */
  private finish(call: Call, decided: Decided, now = this.deps.clock.now()): Execution {
    const outcome = {
      handler: call.plan.label,
      scope: call.plan.scope,
      attempt: call.attempt,
      cacheBypassed: call.cacheBypassed,
      durationMs: now - call.started,
      ...decided,
    } as Execution & { transientRetries?: number };
    if (call.transientRetries > 0) outcome.transientRetries = call.transientRetries;
    if (call.probe) this.reports.end(call.probe, outcome);
    for (const listener of this.deps.listeners ?? []) {
      try {
        listener(outcome as IdempotencyOutcome);
      } catch (error) {
        this.deps.logger.error('an outcome listener threw', { error: String(error) });
      }
    }
    return outcome;
  }
}

/**
 * A batch's messages grouped by token, in order of first appearance (a keyless message alone): each
 * group's message indexes and its token, and the distinct tokens in group order, for one cache read.
 */
class TokenGroups {
  readonly members: number[][] = [];
  readonly tokens: (TokenRef | undefined)[] = [];
  readonly distinct: TokenRef[] = [];
  readonly #byId = new Map<string, number>();

  add(index: number, token: TokenRef | undefined): void {
    if (token !== undefined) {
      const id = tokenId(token);
      const known = this.#byId.get(id);
      if (known !== undefined) {
        (this.members[known] as number[]).push(index);
        return;
      }
      this.#byId.set(id, this.members.length);
      this.distinct.push(token);
    }
    this.members.push([index]);
    this.tokens.push(token);
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
