/** A container with the engine on memory adapters, a fake clock, and recorders for logs and outcomes. */
import 'reflect-metadata';
import {
  IDEMPOTENCY_CACHE,
  IDEMPOTENCY_CLOCK,
  IDEMPOTENCY_LOGGER,
  IDEMPOTENCY_OUTCOME_LISTENER,
  IDEMPOTENCY_STORE,
  type IdempotencyCache,
  type IdempotencyLogger,
  IdempotencyModule,
  type IdempotencyModuleOptions,
  type IdempotencyOutcome,
  type IdempotencyStore,
  type IdempotentView,
  idempotentView,
  MemoryIdempotencyCache,
  MemoryIdempotencyStore,
} from '@idempotent-mq/core';
import { FakeClock } from '@idempotent-mq/testing';
import { Container, type Newable } from 'inversify';

/** The message shape of a RocketMQ MessageView, reduced to what the tests read. */
export interface Message {
  readonly keys: readonly string[];
  readonly body?: unknown;
  readonly deliveryAttempt?: number;
}

export const msg = (
  key: string | string[],
  body: unknown = { amount: 100 },
  deliveryAttempt = 1,
): Message => ({
  keys: Array.isArray(key) ? key : [key],
  body,
  deliveryAttempt,
});

export class RecordingLogger implements IdempotencyLogger {
  readonly lines: { level: string; message: string }[] = [];
  debug(message: string): void {
    this.lines.push({ level: 'debug', message });
  }
  info(message: string): void {
    this.lines.push({ level: 'info', message });
  }
  warn(message: string): void {
    this.lines.push({ level: 'warn', message });
  }
  error(message: string): void {
    this.lines.push({ level: 'error', message });
  }
  at(level: string): string[] {
    return this.lines.filter((l) => l.level === level).map((l) => l.message);
  }
}

export interface Harness<
  S extends IdempotencyStore = MemoryIdempotencyStore,
  C extends IdempotencyCache = MemoryIdempotencyCache,
> {
  readonly container: Container;
  readonly clock: FakeClock;
  readonly store: S;
  readonly cache: C;
  readonly logger: RecordingLogger;
  readonly outcomes: IdempotencyOutcome[];
  /** Binds and resolves a consumer class, typed for direct calls. */
  get<T>(ctor: Newable<T>): IdempotentView<T>;
}

export function harness<
  S extends IdempotencyStore = MemoryIdempotencyStore,
  C extends IdempotencyCache = MemoryIdempotencyCache,
>(
  options: {
    module?: IdempotencyModuleOptions;
    store?: (clock: FakeClock) => S;
    cache?: (clock: FakeClock) => C;
    clock?: FakeClock;
  } = {},
): Harness<S, C> {
  const clock = options.clock ?? new FakeClock();
  const container = new Container();
  container.load(new IdempotencyModule(options.module));
  const store = options.store
    ? options.store(clock)
    : (new MemoryIdempotencyStore({ clock }) as unknown as S);
  const cache = options.cache
    ? options.cache(clock)
    : (new MemoryIdempotencyCache({ clock }) as unknown as C);
  const logger = new RecordingLogger();
  const outcomes: IdempotencyOutcome[] = [];
  container.rebind(IDEMPOTENCY_CLOCK).toConstantValue(clock);
  container.rebind(IDEMPOTENCY_STORE).toConstantValue(store);
  container.rebind(IDEMPOTENCY_CACHE).toConstantValue(cache);
  container.rebind(IDEMPOTENCY_LOGGER).toConstantValue(logger);
  container.bind(IDEMPOTENCY_OUTCOME_LISTENER).toConstantValue((o) => outcomes.push(o));
  return {
    container,
    clock,
    store,
    cache,
    logger,
    outcomes,
    get<T>(ctor: Newable<T>): IdempotentView<T> {
      if (!container.isBound(ctor)) container.bind(ctor).toSelf().inSingletonScope();
      return idempotentView(container.get(ctor));
    },
  };
}

/** A promise with its resolve and reject outside, to hold a handler mid-flight. */
export function deferred<T = void>(): {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
} {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Settles a promise into a value or its error, for asserting on both. */
export async function settle<T>(
  p: Promise<T>,
): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  try {
    return { ok: true, value: await p };
  } catch (error) {
    return { ok: false, error };
  }
}

/**
 * The renewals `store` receives from now on (the owner of each): to show that a keep-alive has stopped,
 * rather than that some timer is gone (the engine's timers are shared, one per length).
 */
export function renewalsOf(store: IdempotencyStore): string[] {
  const owners: string[] = [];
  const renew = store.renew.bind(store);
  store.renew = (token, owner, leaseMs, tx) => {
    owners.push(owner);
    return renew(token, owner, leaseMs, tx);
  };
  return owners;
}
