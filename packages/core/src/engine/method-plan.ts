/**
 * Method planning, once per method and engine: the options resolved over the module's defaults and
 * validated, the scope fixed, the mode decided against the bound store. The engine asks for a plan on
 * every call; only the first call of a method builds it.
 */
import { IdempotencyStoreError } from '../errors.js';
import type { HandlerMethod } from '../model/handler-method.js';
import {
  type IdempotencyPolicyOptions,
  type IdempotentOptions,
  type ResolvedPolicy,
  resolvePolicy,
} from '../options.js';
import type { IdempotencyStore } from '../ports/idempotency-store.js';
import { scopeOf } from '../scope.js';

/** How the engine runs one method. */
export interface MethodPlan {
  /** `Class.method`, for outcomes and logs. */
  readonly label: string;
  readonly scope: string;
  readonly policy: ResolvedPolicy;
  readonly options: IdempotentOptions<unknown>;
  /** Claim, handler and completion in one store transaction. */
  readonly transactional: boolean;
  readonly fn: HandlerMethod['fn'];
}

/** The plans of one engine, by the class the container built and the method. */
export class MethodPlans {
  readonly #plans = new WeakMap<object, Map<string | symbol, MethodPlan>>();

  constructor(
    private readonly defaults: IdempotencyPolicyOptions,
    private readonly store: IdempotencyStore,
  ) {}

  /**
   * The plan of `target` as run on `self` (a subclass instance gets its own scope).
   * @throws `InvalidOptionError` for options that do not resolve; `IdempotencyStoreError` for
   * `mode: 'transactional'` on a store without transactions.
   */
  of(target: HandlerMethod, self: unknown): MethodPlan {
    const runtime = (self as object | null)?.constructor ?? target.ctor;
    let byMethod = this.#plans.get(runtime);
    if (!byMethod) {
      byMethod = new Map();
      this.#plans.set(runtime, byMethod);
    }
    const known = byMethod.get(target.method);
    if (known) return known;

    const options = target.options as IdempotentOptions<unknown>;
    const label = `${target.ctor.name}.${String(target.method)}`;
    const policy = resolvePolicy(this.defaults, options);
    if (policy.mode === 'transactional' && !this.store.transaction) {
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
      transactional: policy.mode !== 'lease' && this.store.transaction !== undefined,
      fn: target.fn,
    };
    byMethod.set(target.method, plan);
    return plan;
  }
}
