/**
 * The listener registry: at start-up it finds the `@MessageListener` classes among the container's
 * bindings, checks the wiring (one error listing every offender), and subscribes each through the bound
 * transport. Each received batch runs through the engine (the path of a direct call, with one cache round
 * trip for the batch's duplicates), and each outcome becomes a settlement: processed or duplicate → ack; in flight → retry soon; failed →
 * retry with backoff; poison or past `maxAttempts` → dead letter.
 */
import type { Container, Newable, ServiceIdentifier } from 'inversify';
import { deliveryInfo } from '../context.js';
import { IdempotencyError, InvalidOptionError, ListenerWiringError } from '../errors.js';
import type { Execution, HandlerMethod, IdempotencyHandler } from '../idempotency-handler.js';
import {
  getHandlerMethod,
  getIdempotentMethods,
  getMessageListener,
  type MessageListenerMetadata,
} from '../metadata.js';
import type { MessageTransport, Settlement, TransportMessage } from '../ports/message-transport.js';
import { scopeOf } from '../scope.js';
import { IDEMPOTENCY_CACHE, IDEMPOTENCY_HANDLER, IDEMPOTENCY_STORE, MESSAGE_TRANSPORT } from '../tokens.js';
import { classBindings } from './binding-discovery.js';
import { DEFAULT_LISTENER, validateListenerOptions } from './message-listener.decorator.js';

/** Options of a {@link ListenerRegistry}. */
export interface ListenerRegistryOptions {
  /**
   * Listener classes the application expects. Each must be bound in the container; one that is not is
   * reported at start-up (classes found among the bindings are subscribed either way).
   * @defaultValue none
   */
  readonly listeners?: readonly Newable[];
  /**
   * Delay of the first retry of a failed delivery; it doubles each attempt, with ±20% jitter.
   * @defaultValue 1000 ms
   */
  readonly retryBaseDelayMs?: number;
  /** @defaultValue 60 000 ms */
  readonly retryMaxDelayMs?: number;
  /**
   * Delay before a copy that met another copy in flight is delivered again.
   * @defaultValue 1000 ms
   */
  readonly inFlightDelayMs?: number;
  /** Randomness for the backoff jitter (tests pass a seeded one). @defaultValue `Math.random` */
  readonly random?: () => number;
}

/** One subscribed listener, as the registry reports it. */
export interface ListenerSubscription {
  readonly listener: string;
  readonly method: string;
  readonly topic: string;
  readonly consumerGroup: string;
  readonly scope: string;
}

interface Planned {
  readonly id: ServiceIdentifier;
  readonly ctor: Newable;
  readonly metadata: MessageListenerMetadata;
  readonly method: string;
  readonly target: HandlerMethod;
  readonly scope: string;
}

/** Error codes that a redelivery cannot fix: dead-letter at once rather than retry 16 times. */
const POISON = new Set([
  'MISSING_KEY',
  'KEY_FUNCTION_FAILED',
  'PAYLOAD_NOT_SERIALIZABLE',
  'PAYLOAD_CONFLICT',
]);

export class ListenerRegistry {
  private readonly options: Required<Omit<ListenerRegistryOptions, 'listeners'>> & {
    listeners: readonly Newable[];
  };
  private transport: MessageTransport | undefined;
  private planned: Planned[] = [];
  private state: 'idle' | 'started' | 'stopped' = 'idle';

  constructor(
    private readonly container: Container,
    options: ListenerRegistryOptions = {},
  ) {
    this.options = {
      listeners: options.listeners ?? [],
      retryBaseDelayMs: options.retryBaseDelayMs ?? 1000,
      retryMaxDelayMs: options.retryMaxDelayMs ?? 60_000,
      inFlightDelayMs: options.inFlightDelayMs ?? 1000,
      random: options.random ?? Math.random,
    };
    for (const option of ['retryBaseDelayMs', 'retryMaxDelayMs', 'inFlightDelayMs'] as const) {
      const value = this.options[option];
      if (!Number.isInteger(value) || value < 0 || value > 2 ** 31 - 1) {
        throw new InvalidOptionError(`ListenerRegistry.${option}`, 'an integer from 0 to 2147483647', value);
      }
    }
  }

  /** What {@link ListenerRegistry.start} subscribed. */
  get subscriptions(): readonly ListenerSubscription[] {
    return this.planned.map((p) => ({
      listener: p.ctor.name,
      method: p.method,
      topic: p.metadata.topic,
      consumerGroup: p.metadata.consumerGroup,
      scope: p.scope,
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

    this.transport = this.container.get(MESSAGE_TRANSPORT);
    const engine = this.container.get(IDEMPOTENCY_HANDLER);
    this.planned = planned;
    this.state = 'started';
    for (const p of planned) {
      const instance = instances.get(p);
      const concurrency = p.metadata.concurrency ?? DEFAULT_LISTENER.concurrency;
      const maxAttempts = p.metadata.maxAttempts ?? DEFAULT_LISTENER.maxAttempts;
      await this.transport.subscribe({
        topic: p.metadata.topic,
        consumerGroup: p.metadata.consumerGroup,
        filter: p.metadata.filter ?? DEFAULT_LISTENER.filter,
        concurrency,
        maxAttempts,
        listener: p.metadata,
        handle: (messages) => this.handleBatch(engine, p, instance, messages, maxAttempts),
      });
    }
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
    engine: IdempotencyHandler,
    p: Planned,
    instance: unknown,
    messages: readonly TransportMessage[],
    maxAttempts: number,
  ): Promise<Settlement[]> {
    const attempts = messages.map((m) => Math.max(1, m.deliveryAttempt));
    try {
      const outcomes = await engine.executeBatch(
        p.target,
        instance,
        messages,
        attempts.map((attempt) => deliveryInfo({ attempt, maxAttempts })),
      );
      return outcomes.map((o, i) => this.settlementOf(o, attempts[i] as number, maxAttempts));
    } catch (error) {
      // Only a bug can get here (the engine reports failures as outcomes); never lose the batch over it.
      const reason = `the engine failed: ${String(error)}`;
      return messages.map(() => ({ action: 'retry', delayMs: this.options.retryMaxDelayMs, reason }));
    }
  }

  /** What the transport must do with a message, from its outcome. */
  private settlementOf(outcome: Execution, attempt: number, maxAttempts: number): Settlement {
    switch (outcome.kind) {
      case 'processed':
      case 'takeover':
      case 'duplicate':
        return { action: 'ack' };
      case 'inFlight':
        return {
          action: 'retry',
          delayMs: this.options.inFlightDelayMs,
          reason: 'another copy is in flight',
        };
      default: {
        const error = outcome.error;
        const reason =
          error instanceof Error ? `${error.name}: ${error.message}` : `thrown: ${String(error)}`;
        if (error instanceof IdempotencyError && POISON.has(error.code))
          return { action: 'deadLetter', reason };
        if (attempt >= maxAttempts)
          return { action: 'deadLetter', reason: `failed ${attempt} times; last: ${reason}` };
        return { action: 'retry', delayMs: this.backoff(attempt), reason };
      }
    }
  }

  private backoff(attempt: number): number {
    const { retryBaseDelayMs, retryMaxDelayMs, random } = this.options;
    const exponential = Math.min(retryMaxDelayMs, retryBaseDelayMs * 2 ** Math.min(attempt - 1, 30));
    return Math.round(exponential * (0.8 + 0.4 * random()));
  }

  /** Finds the listeners and everything wrong with the wiring. */
  private plan(): { planned: Planned[]; offenders: string[] } {
    const offenders: string[] = [];
    const c = this.container;
    for (const [id, what] of [
      [MESSAGE_TRANSPORT, 'no MessageTransport is bound to MESSAGE_TRANSPORT'],
      [IDEMPOTENCY_STORE, 'no idempotency store is bound (load IdempotencyModule)'],
      [IDEMPOTENCY_CACHE, 'no idempotency cache is bound (load IdempotencyModule)'],
      [IDEMPOTENCY_HANDLER, 'the idempotency engine is not bound (load IdempotencyModule)'],
    ] as const) {
      if (!c.isBound(id)) offenders.push(what);
    }

    const bindings = classBindings(c);
    for (const expected of this.options.listeners) {
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
      } catch (error) {
        offenders.push((error as Error).message);
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
      planned.push({ id: serviceIdentifier, ctor, metadata, method, target, scope });
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
