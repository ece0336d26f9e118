/** An `@Idempotent` method as the engine runs it: recorded by the decorator, read by the registry. */
import type { IdempotencyContext } from '../context.js';
import type { IdempotentOptions } from '../options.js';

/** One handler method, described for the engine. */
export interface HandlerMethod {
  /** The class the method belongs to (its consumer group, if it is a listener, joins the default scope). */
  readonly ctor: abstract new (
    ...args: never[]
  ) => unknown;
  readonly method: string | symbol;
  readonly options: IdempotentOptions<never>;
  /** The undecorated method. */
  readonly fn: (message: unknown, ctx: IdempotencyContext) => unknown;
}
