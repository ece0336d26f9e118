/**
 * inversify service identifiers of the engine. Swap an implementation by rebinding one of them:
 * `container.rebind(IDEMPOTENCY_STORE).toConstantValue(new KnexIdempotencyStore(knex))`.
 */
import type { ServiceIdentifier } from 'inversify';
import type { IdempotencyEngine } from './idempotency-engine.js';
import type { IdempotencyModuleOptions } from './options.js';
import type { OutcomeListener } from './outcome.js';
import type { Clock } from './ports/clock.js';
import type { IdempotencyCache } from './ports/idempotency-cache.js';
import type { IdempotencyStore } from './ports/idempotency-store.js';
import type { IdempotencyInstrumentation } from './ports/instrumentation.js';
import type { IdempotencyLogger } from './ports/logger.js';
import type { MessageTransport } from './ports/message-transport.js';

/** The {@link IdempotencyStore}: memory by default. */
export const IDEMPOTENCY_STORE: ServiceIdentifier<IdempotencyStore> = Symbol.for('idempotent-mq.store');
/** The {@link IdempotencyCache}: memory by default. Bind `null`-free: a cache is always present. */
export const IDEMPOTENCY_CACHE: ServiceIdentifier<IdempotencyCache> = Symbol.for('idempotent-mq.cache');
/** The {@link Clock}: the system clock by default. */
export const IDEMPOTENCY_CLOCK: ServiceIdentifier<Clock> = Symbol.for('idempotent-mq.clock');
/** The {@link IdempotencyLogger}: the console at `warn` by default. */
export const IDEMPOTENCY_LOGGER: ServiceIdentifier<IdempotencyLogger> = Symbol.for('idempotent-mq.logger');
/** Module-wide option defaults ({@link IdempotencyModuleOptions}). */
export const IDEMPOTENCY_OPTIONS: ServiceIdentifier<IdempotencyModuleOptions> =
  Symbol.for('idempotent-mq.options');
/** Outcome listeners: bind any number; each hears every message's outcome. */
export const IDEMPOTENCY_OUTCOME_LISTENER: ServiceIdentifier<OutcomeListener> = Symbol.for(
  'idempotent-mq.outcome-listener',
);
/**
 * Traces and metrics of each message ({@link IdempotencyInstrumentation}), e.g. `@idempotent-mq/opentelemetry`'s.
 * Optional: unbound, the engine does no instrumentation work.
 */
export const IDEMPOTENCY_INSTRUMENTATION: ServiceIdentifier<IdempotencyInstrumentation> = Symbol.for(
  'idempotent-mq.instrumentation',
);
/** The engine itself, one per container. */
export const IDEMPOTENCY_ENGINE: ServiceIdentifier<IdempotencyEngine> = Symbol.for('idempotent-mq.engine');
/** The {@link MessageTransport} the listener registry subscribes through. */
export const MESSAGE_TRANSPORT: ServiceIdentifier<MessageTransport> = Symbol.for('idempotent-mq.transport');
