/**
 * The listener registry: at start-up it finds the `@MessageListener` classes among the container's
 * bindings, checks the wiring against the engine and the transport's profile (one error listing every
 * offender), and subscribes each through the bound transport. Each received batch runs through the
 * engine (the path of a direct call, with one cache round trip for the batch's duplicates), and the
 * {@link SettlementPolicy} turns each outcome into a settlement the transport carries out.
 */
import type { Container, Newable, ServiceIdentifier } from 'inversify';
import { type DeliverySubscription, deliveryInfo } from '../context.js';
import { ListenerWiringError } from '../errors.js';
import type { HandlerMethod, IdempotencyEngine } from '../idempotency-engine.js';
import {
  getHandlerMethod,
  getIdempotentMethods,
  getMessageListener,
  type MessageListenerMetadata,
} from '../metadata.js';
import { booleanOption, checkOptionsObject, integerOption, MAX_TIMER_MS } from '../option-checks.js';
import type { IdempotencyLogger } from '../ports/logger.js';
import type {
  MessageTransport,
  Settlement,
  TransportMessage,
  TransportProfile,
} from '../ports/message-transport.js';
import type { ReadinessCheck } from '../ports/readiness.js';
import { checkReadiness, formatCheck, type Readiness, ReadinessError } from '../readiness-check.js';
import { scopeOf } from '../scope.js';
import {
  IDEMPOTENCY_CACHE,
  IDEMPOTENCY_CLOCK,
  IDEMPOTENCY_ENGINE,
  IDEMPOTENCY_LOGGER,
  IDEMPOTENCY_STORE,
  MESSAGE_TRANSPORT,
} from '../tokens.js';
import { classBindings } from './binding-discovery.js';
import { DEFAULT_LISTENER, validateListenerOptions } from './message-listener.decorator.js';
import { failureBackoff, SettlementPolicy, type SettlementPolicyOptions } from './settlement-policy.js';

const REGISTRY_OPTIONS = [
  'listeners',
  'retryBaseDelayMs',
  'retryMaxDelayMs',
  'inFlightDelayMs',
  'random',
  'checkReadiness',
  'readinessTimeoutMs',
];

/** What {@link ListenerRegistry.health} reports. */
export interface RegistryHealth {
  readonly state: 'idle' | 'started' | 'stopped';
  /** Subscribed, on a store whose start-up checks passed. */
  readonly ready: boolean;
  /** The store's and the cache's start-up checks, as they answered. */
  readonly checks: readonly ReadinessCheck[];
}

/** Options of a {@link ListenerRegistry}: its settlement policy's, and the listeners it expects. */
export interface ListenerRegistryOptions extends SettlementPolicyOptions {
  /**
   * Run the store's and the cache's own checks before subscribing (reachable, schema present,
   * primitives probed), and refuse to start on a failed one. Turn off only where start-up must not
   * touch the servers.
   * @defaultValue `true`
   */
  readonly checkReadiness?: boolean;
  /** How long each port's start-up check may take. @defaultValue 10 000 ms */
  readonly readinessTimeoutMs?: number;
  /**
   * Listener classes the application expects. Each must be bound in the container; one that is not is
   * reported at start-up (classes found among the bindings are subscribed either way).
   * @defaultValue none
   */
  readonly listeners?: readonly Newable[];
}

/** One subscribed listener, as the registry reports it. */
export interface ListenerSubscription {
  readonly listener: string;
  readonly method: string;
  readonly topic: string;
  readonly consumerGroup: string;
  readonly scope: string;
  /** Attempts before a failing message is dead-lettered (the listener's, else the transport's default). */
  readonly maxAttempts: number;
}

interface Planned {
  readonly id: ServiceIdentifier;
  readonly ctor: Newable;
  readonly metadata: MessageListenerMetadata;
  readonly method: string;
  readonly target: HandlerMethod;
  readonly scope: string;
  readonly maxAttempts: number;
}

/**
 * Finds every `@MessageListener` class the container knows (NestJS's explorer, for inversify),
 * checks the store and cache are ready, subscribes each listener through the bound transport, and
 * turns the engine's answer for each message into a settlement (ack, retry, wait, dead letter) by one
 * {@link SettlementPolicy}. `start()` once at boot, `stop()` to drain; `health()` for orchestrators.
 *
 * @example
 * ```ts
 * const registry = container.get(ListenerRegistry);
 * await registry.start(); // throws ReadinessError, naming the fix, if a store or cache is not ready
 * process.on('SIGTERM', () => registry.stop());
 * ```
 */
export class ListenerRegistry {
  private transport: MessageTransport | undefined;
  private planned: Planned[] = [];
  private state: 'idle' | 'started' | 'stopped' = 'idle';
  private readiness: Readiness | undefined;

  /** Checks the registry's own options now; the wiring is checked by {@link ListenerRegistry.start}. */
  constructor(
    private readonly container: Container,
    private readonly options: ListenerRegistryOptions = {},
  ) {
    checkOptionsObject(options, REGISTRY_OPTIONS, 'ListenerRegistry');
    failureBackoff(options, 'ListenerRegistry');
    booleanOption('ListenerRegistry', 'checkReadiness', options.checkReadiness);
    integerOption('ListenerRegistry', 'readinessTimeoutMs', options.readinessTimeoutMs, {
      min: 1,
      max: MAX_TIMER_MS,
    });
  }

  /** What {@link ListenerRegistry.start} subscribed. */
  get subscriptions(): readonly ListenerSubscription[] {
    return this.planned.map((p) => ({
      listener: p.ctor.name,
      method: p.method,
      topic: p.metadata.topic,
      consumerGroup: p.metadata.consumerGroup,
      scope: p.scope,
      maxAttempts: p.maxAttempts,
    }));
  }

  /**
   * Checks the wiring and subscribes every listener.
   * @throws {@link ListenerWiringError} listing every offender: an expected listener that is not bound,
   * no transport / cache / store bound, a listener without a usable `@Idempotent` method, two handlers
   * with the same scope, two listeners of one group on one topic, invalid options.
   */
  async start(): Promise<void> {
    if (this.state !== 'idle') throw new Error(`the registry is already ${this.state}`);
    const { planned, offenders } = this.plan();
    if (offenders.length > 0) throw new ListenerWiringError(offenders);
    const instances = new Map<Planned, unknown>();
    for (const p of planned) {
      try {
        instances.set(p, this.container.get(p.id));
      } catch (error) {
        offenders.push(`${p.ctor.name} cannot be resolved from the container: ${(error as Error).message}`);
      }
    }
    if (offenders.length > 0) throw new ListenerWiringError(offenders);

    const transport = this.container.get(MESSAGE_TRANSPORT);
    const engine = this.container.get(IDEMPOTENCY_ENGINE);
    // Nothing is consumed until the store (and the cache) say they can do their job.
    await this.checkReadiness(engine, planned);
    const policy = new SettlementPolicy(
      this.options,
      transport.profile,
      this.container.get(IDEMPOTENCY_CLOCK),
    );
    this.warnShortRetention(engine, policy, transport, planned);
    this.transport = transport;
    this.planned = planned;
    this.state = 'started';
    for (const p of planned) {
      const instance = instances.get(p);
      const subscription: DeliverySubscription = {
        topic: p.metadata.topic,
        consumerGroup: p.metadata.consumerGroup,
        broker: transport.profile.broker,
      };
      await transport.subscribe({
        topic: p.metadata.topic,
        consumerGroup: p.metadata.consumerGroup,
        filter: p.metadata.filter ?? DEFAULT_LISTENER.filter,
        concurrency: p.metadata.concurrency ?? DEFAULT_LISTENER.concurrency,
        maxAttempts: p.maxAttempts,
        listener: p.metadata,
        handle: (messages) => this.handleBatch(engine, policy, p, instance, subscription, messages),
      });
    }
  }

  /**
   * What the registry is doing and what the store's and cache's checks said at start-up, for an
   * orchestrator's readiness probe: `ready` once subscribed on a store that passed its checks.
   */
  health(): RegistryHealth {
    return {
      state: this.state,
      ready: this.state === 'started' && (this.readiness?.ready ?? false),
      checks: this.readiness?.checks ?? [],
    };
  }

  /**
   * Runs the store's and the cache's own checks (reachable, schema present, primitives probed); a
   * failed one stops the start with {@link ReadinessError}, naming each fix; a degraded one is logged.
   */
  private async checkReadiness(engine: IdempotencyEngine, planned: readonly Planned[]): Promise<void> {
    if (this.options.checkReadiness === false) return;
    const store = this.container.get(IDEMPOTENCY_STORE);
    const cache = this.container.get(IDEMPOTENCY_CACHE);
    const transactional = planned.some((p) => {
      const { mode } = engine.policyOf(p.target);
      return mode === 'transactional' || (mode === 'auto' && typeof store.transaction === 'function');
    });
    const readiness = await checkReadiness({
      store,
      cache,
      transactional,
      timeoutMs: this.options.readinessTimeoutMs,
    });
    this.readiness = readiness;
    const logger = this.container.isBound(IDEMPOTENCY_LOGGER)
      ? this.container.get<IdempotencyLogger>(IDEMPOTENCY_LOGGER)
      : undefined;
    for (const check of readiness.checks) {
      if (check.status === 'degraded') logger?.warn(`start-up check: ${formatCheck(check)}`);
    }
    if (!readiness.ready) throw new ReadinessError(readiness.checks);
  }

  /** Stops receiving, lets the handlers in flight settle, then closes the transport. */
  async stop(): Promise<void> {
    if (this.state !== 'started') return;
    this.state = 'stopped';
    await this.transport?.stop();
  }

  /**
   * Settles a received batch per message, through the engine's batch path: one cache round trip for
   * the duplicates, copies of one key one after another (so the same key twice runs once), and a failed
   * entry fails alone.
   */
  private async handleBatch(
    engine: IdempotencyEngine,
    policy: SettlementPolicy,
    p: Planned,
    instance: unknown,
    subscription: DeliverySubscription,
    messages: readonly TransportMessage[],
  ): Promise<Settlement[]> {
    const attempts = messages.map((m) => Math.max(1, m.deliveryAttempt));
    try {
      const outcomes = await engine.executeBatch(
        p.target,
        instance,
        messages,
        attempts.map((attempt) => deliveryInfo({ attempt, maxAttempts: p.maxAttempts, subscription })),
      );
      return outcomes.map((o, i) => policy.settle(o, attempts[i] as number, p.maxAttempts));
    } catch (error) {
      // Only a bug can get here (the engine reports failures as outcomes); never lose the batch over it.
      return messages.map(() => policy.bug(error));
    }
  }

  /**
   * A completed token must outlive every redelivery of its message: warns, once per handler, when its
   * retention is shorter than the transport's redelivery horizon or the failure retries' own.
   */
  private warnShortRetention(
    engine: IdempotencyEngine,
    policy: SettlementPolicy,
    transport: MessageTransport,
    planned: readonly Planned[],
  ): void {
    const logger = this.container.isBound(IDEMPOTENCY_LOGGER)
      ? this.container.get<IdempotencyLogger>(IDEMPOTENCY_LOGGER)
      : undefined;
    for (const p of planned) {
      const { ttlMs } = engine.policyOf(p.target);
      const horizon = Math.max(transport.profile.redeliveryHorizonMs, policy.horizonMs(p.maxAttempts));
      if (ttlMs < horizon) {
        logger?.warn(
          `${p.ctor.name}.${p.method}: ttlMs ${ttlMs} is shorter than the time ${transport.profile.broker} ` +
            `may redeliver its messages (${horizon} ms); a late redelivery would run again`,
          { ttlMs, horizonMs: horizon },
        );
      }
    }
  }

  /** The bound transport's profile; what is wrong with it goes to `offenders`. */
  private transportProfile(offenders: string[]): TransportProfile | undefined {
    if (!this.container.isBound(MESSAGE_TRANSPORT)) return undefined;
    let transport: MessageTransport;
    try {
      transport = this.container.get(MESSAGE_TRANSPORT);
    } catch (error) {
      offenders.push(`the transport cannot be resolved from the container: ${(error as Error).message}`);
      return undefined;
    }
    const profile = (transport as Partial<MessageTransport> | undefined)?.profile;
    if (typeof profile?.checkListener !== 'function' || !(profile.defaultMaxAttempts >= 1)) {
      offenders.push(
        'the bound transport has no profile (MessageTransport.profile: its broker, attempts, delays and ' +
          'listener rules): implement it',
      );
      return undefined;
    }
    return profile;
  }

  /** Finds the listeners and everything wrong with the wiring. */
  private plan(): { planned: Planned[]; offenders: string[] } {
    const offenders: string[] = [];
    const c = this.container;
    for (const [id, what] of [
      [MESSAGE_TRANSPORT, 'no MessageTransport is bound to MESSAGE_TRANSPORT'],
      [IDEMPOTENCY_STORE, 'no idempotency store is bound (load IdempotencyModule)'],
      [IDEMPOTENCY_CACHE, 'no idempotency cache is bound (load IdempotencyModule)'],
      [IDEMPOTENCY_ENGINE, 'the idempotency engine is not bound (load IdempotencyModule)'],
    ] as const) {
      if (!c.isBound(id)) offenders.push(what);
    }

    const profile = this.transportProfile(offenders);
    const bindings = classBindings(c);
    for (const expected of this.options.listeners ?? []) {
      if (!bindings.some((b) => b.implementationType === expected)) {
        offenders.push(
          `${expected.name} is a listener the application expects, but it is not bound in the container`,
        );
      }
    }

    const planned: Planned[] = [];
    const seen = new Set<Newable>();
    for (const { serviceIdentifier, implementationType: ctor } of bindings) {
      const metadata = getMessageListener(ctor);
      if (!metadata || seen.has(ctor)) continue;
      seen.add(ctor);
      try {
        validateListenerOptions(metadata, ctor.name);
        profile?.checkListener(metadata, ctor.name);
      } catch (error) {
        offenders.push((error as Error).message);
        continue;
      }
      const maxAttempts = metadata.maxAttempts ?? profile?.defaultMaxAttempts ?? 1;
      if (profile && maxAttempts > profile.maxAttempts) {
        offenders.push(
          `${ctor.name}.maxAttempts is ${maxAttempts}, but ${profile.broker} dead-letters after ` +
            `${profile.maxAttempts} deliveries: lower it, or raise the broker's limit`,
        );
        continue;
      }
      const methods = getIdempotentMethods(ctor);
      const method = metadata.method ?? (methods.size === 1 ? String([...methods.keys()][0]) : undefined);
      const options = method === undefined ? undefined : methods.get(method);
      if (!method || !options) {
        offenders.push(
          metadata.method
            ? `${ctor.name}.${metadata.method} is named as the handler but is not @Idempotent`
            : methods.size === 0
              ? `${ctor.name} is a listener with no @Idempotent method: it would run unprotected`
              : `${ctor.name} has ${methods.size} @Idempotent methods: name the handler with the listener's "method" option`,
        );
        continue;
      }
      const target = getHandlerMethod(ctor, method) as HandlerMethod;
      const scope = scopeOf(ctor, target.ctor, method, target.options);
      planned.push({ id: serviceIdentifier, ctor, metadata, method, target, scope, maxAttempts });
    }

    if (planned.length === 0 && offenders.length === 0) {
      offenders.push(
        'no @MessageListener class is bound in this container, so nothing would be consumed: bind the ' +
          'listener classes (container.bind(MyConsumer).toSelf()) before start()',
      );
    }
    for (const [i, a] of planned.entries()) {
      for (const b of planned.slice(i + 1)) {
        if (a.scope === b.scope) {
          offenders.push(
            `${a.ctor.name}.${a.method} and ${b.ctor.name}.${b.method} share the scope "${a.scope}"`,
          );
        }
        if (a.metadata.topic === b.metadata.topic && a.metadata.consumerGroup === b.metadata.consumerGroup) {
          offenders.push(
            `${a.ctor.name} and ${b.ctor.name} both consume "${a.metadata.topic}" in group "${a.metadata.consumerGroup}": ` +
              'the group would split the messages between them',
          );
        }
      }
    }
    return { planned, offenders };
  }
}
