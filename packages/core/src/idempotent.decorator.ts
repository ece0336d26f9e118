/**
 * `@Idempotent`: records the method's options, asks the container to hand each instance the engine,
 * and routes calls through it. An instance the container did not create fails loudly instead of
 * running unprotected.
 */
import { inject, optional } from 'inversify';
import type { IdempotencyContext } from './context.js';
import { resultOf } from './engine/direct-call.js';
import { IdempotencyNotConfiguredError, InvalidOptionError } from './errors.js';
import type { IdempotencyEngine } from './idempotency-engine.js';
import { ENGINE_PROPERTY, markEngineInjected, setHandlerMethod } from './metadata.js';
import type { HandlerMethod } from './model/handler-method.js';
import { type IdempotencyMode, type IdempotentOptions, validateIdempotentOptions } from './options.js';
import { IDEMPOTENCY_ENGINE } from './tokens.js';

/** A method `@Idempotent` can decorate: `(message, ctx) => Promise<result>`. */
// biome-ignore lint/suspicious/noExplicitAny: the context's transaction type is the store's, chosen by the user.
export type IdempotentMethod<M> = (message: M, ctx: IdempotencyContext<any>) => Promise<unknown>;

/** The transaction type a handler's `ctx` declares (`unknown` for a handler that takes no `ctx`). */
type TrxOf<T> = T extends (message: never, ctx: IdempotencyContext<infer Tx>) => unknown ? Tx : unknown;

/**
 * Nothing for a handler whose `ctx` fits the mode; else a property of type `never` whose name says the
 * fix, so that the compiler's error reads as one.
 */
export type ModeCheck<T, Mode> = Mode extends 'lease'
  ? undefined extends TrxOf<T>
    ? unknown
    : {
        "mode 'lease' has no transaction: ctx.trx is undefined, type ctx as IdempotencyContext<undefined>": never;
      }
  : Mode extends 'transactional'
    ? [TrxOf<T>] extends [undefined]
      ? {
          "mode 'transactional' hands over the store's transaction: type ctx as IdempotencyContext<Knex.Transaction> (or your store's)": never;
        }
      : unknown
    : unknown;

/** What `@Idempotent(options)` returns: a method decorator, which checks the handler's `ctx` against `Mode`. */
export type IdempotentDecorator<M, Mode = 'auto'> = <T extends IdempotentMethod<M>>(
  target: object,
  method: string | symbol,
  descriptor: TypedPropertyDescriptor<T> & ModeCheck<T, Mode>,
) => TypedPropertyDescriptor<T>;

/**
 * Makes a consumer method idempotent on the key that `options.key` reads from the message.
 *
 * The class must be resolved from an inversify container that loaded `IdempotencyModule`. Call the
 * method with the message (and, from a transport, a `deliveryInfo`); the handler receives the message
 * and an {@link IdempotencyContext}.
 *
 * `ctx.trx` is typed by mode where the options name it: with `mode: 'transactional'` a handler must take
 * a context whose `trx` is a transaction (`IdempotencyContext<Knex.Transaction>`), with `mode: 'lease'`
 * one whose `trx` is `undefined` (`IdempotencyContext<undefined>`); either mistake is a compile error.
 * With `mode: 'auto'` (the default, which depends on the store bound) any context type is accepted.
 *
 * @example
 * ```ts
 * @injectable()
 * class PaymentConsumer {
 *   @Idempotent({ key: (m: Message) => m.keys, mode: 'transactional' })
 *   async onMessage(m: Message, ctx: IdempotencyContext<Knex.Transaction>) {
 *     await ctx.trx('payments').insert({ serial: ctx.token.key, amount: m.amount });
 *   }
 * }
 * ```
 */
export function Idempotent<M, const Mode extends IdempotencyMode = 'auto'>(
  options: IdempotentOptions<M> & { readonly mode?: Mode },
): IdempotentDecorator<M, Mode> {
  return <T extends IdempotentMethod<M>>(
    target: object,
    method: string | symbol,
    descriptor: TypedPropertyDescriptor<T>,
  ): TypedPropertyDescriptor<T> => {
    const ctor = target.constructor as HandlerMethod['ctor'];
    const label = `${ctor.name}.${String(method)}`;
    validateIdempotentOptions(options as IdempotentOptions<never>, `@Idempotent(${label})`);
    const original = descriptor.value;
    if (typeof original !== 'function') {
      throw new InvalidOptionError(`@Idempotent(${label})`, 'a method', original);
    }
    // Property injection, once per class: every instance the container creates receives its engine here.
    // Optional, so that a container without IdempotencyModule still builds the instance, whose calls
    // then fail with IdempotencyNotConfiguredError naming the fix, not with inversify's "No bindings".
    if (markEngineInjected(ctor)) {
      inject(IDEMPOTENCY_ENGINE)(target, ENGINE_PROPERTY);
      optional()(target, ENGINE_PROPERTY);
    }
    const handlerMethod: HandlerMethod = {
      ctor,
      method,
      options: options as IdempotentOptions<never>,
      fn: original as HandlerMethod['fn'],
    };
    setHandlerMethod(ctor, handlerMethod);
    const wrapped = function (this: unknown, message: M, delivery?: unknown): Promise<unknown> {
      const engine = (this as { [ENGINE_PROPERTY]?: IdempotencyEngine } | undefined)?.[ENGINE_PROPERTY];
      if (!engine) return Promise.reject(new IdempotencyNotConfiguredError(label));
      return engine.execute(handlerMethod, this, message, delivery).then(resultOf);
    };
    Object.defineProperty(wrapped, 'name', { value: original.name });
    return { ...descriptor, value: wrapped as unknown as T };
  };
}
