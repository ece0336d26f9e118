/**
 * The container module: binds the engine and its ports with defaults (memory store and cache, system
 * clock, console logger). Swap one by rebinding its token after loading the module.
 */
import { ContainerModule } from 'inversify';
import { ConsoleLogger } from './defaults/console-logger.js';
import { SystemClock } from './defaults/system-clock.js';
import { IdempotencyEngine } from './idempotency-engine.js';
import { MemoryIdempotencyCache } from './memory/memory-idempotency-cache.js';
import { MemoryIdempotencyStore } from './memory/memory-idempotency-store.js';
import { type IdempotencyModuleOptions, resolvePolicy, validatePolicy } from './options.js';
import {
  IDEMPOTENCY_CACHE,
  IDEMPOTENCY_CLOCK,
  IDEMPOTENCY_ENGINE,
  IDEMPOTENCY_INSTRUMENTATION,
  IDEMPOTENCY_LOGGER,
  IDEMPOTENCY_OPTIONS,
  IDEMPOTENCY_OUTCOME_LISTENER,
  IDEMPOTENCY_STORE,
} from './tokens.js';

export type { IdempotencyModuleOptions } from './options.js';

/**
 * Loads the engine into a container.
 *
 * @example
 * ```ts
 * const container = new Container();
 * container.load(new IdempotencyModule({ ttlMs: 3 * 24 * 3600_000 }));
 * container.rebind(IDEMPOTENCY_STORE).toConstantValue(myStore);
 * ```
 * @throws {@link InvalidOptionError} at once, naming the option, when an option is out of range.
 */
export class IdempotencyModule extends ContainerModule {
  constructor(options: IdempotencyModuleOptions = {}) {
    validatePolicy(options, 'IdempotencyModule');
    resolvePolicy(options);
    super(({ bind }) => {
      bind(IDEMPOTENCY_OPTIONS).toConstantValue(options);
      bind(IDEMPOTENCY_CLOCK).toConstantValue(new SystemClock());
      bind(IDEMPOTENCY_LOGGER).toConstantValue(new ConsoleLogger('warn'));
      bind(IDEMPOTENCY_STORE)
        .toDynamicValue((ctx) => new MemoryIdempotencyStore({ clock: ctx.get(IDEMPOTENCY_CLOCK) }))
        .inSingletonScope();
      bind(IDEMPOTENCY_CACHE)
        .toDynamicValue((ctx) => new MemoryIdempotencyCache({ clock: ctx.get(IDEMPOTENCY_CLOCK) }))
        .inSingletonScope();
      bind(IDEMPOTENCY_ENGINE)
        .toDynamicValue(
          (ctx) =>
            new IdempotencyEngine({
              store: ctx.get(IDEMPOTENCY_STORE),
              cache: ctx.get(IDEMPOTENCY_CACHE),
              clock: ctx.get(IDEMPOTENCY_CLOCK),
              logger: ctx.get(IDEMPOTENCY_LOGGER),
              defaults: ctx.get(IDEMPOTENCY_OPTIONS),
              listeners: ctx.getAll(IDEMPOTENCY_OUTCOME_LISTENER, { optional: true }),
              instrumentation: ctx.get(IDEMPOTENCY_INSTRUMENTATION, { optional: true }),
            }),
        )
        .inSingletonScope();
    });
  }
}
