/**
 * @idempotent-mq/core: what an application uses — `@Idempotent` and `makeIdempotent`, the module and its
 * service identifiers, `@MessageListener` and the registry, the memory adapters and the near cache, the
 * errors and the outcome types. What adapter and transport authors need besides is at
 * `@idempotent-mq/core/adapter`.
 */
export { NearIdempotencyCache, type NearIdempotencyCacheOptions } from './cache/near-idempotency-cache.js';
export {
  type DeliveryInfo,
  deliveryInfo,
  type IdempotencyContext,
  type IdempotentView,
  idempotentView,
} from './context.js';
export { ConsoleLogger } from './defaults/console-logger.js';
export { type PinoLike, pinoLogger } from './defaults/pino-logger.js';
export { SystemClock } from './defaults/system-clock.js';
export {
  HandlerTimeoutError,
  IdempotencyError,
  type IdempotencyErrorCode,
  IdempotencyInFlightError,
  IdempotencyNotConfiguredError,
  IdempotencyStoreError,
  InconsistentStateError,
  InvalidOptionError,
  KeyFunctionError,
  LeaseLostError,
  ListenerWiringError,
  MissingIdempotencyKeyError,
  PayloadConflictError,
  PayloadNotSerializableError,
  ResultNotSerializableError,
  type StoreStep,
  StoreUnavailableError,
  UnstorableTokenError,
} from './errors.js';
export { IdempotencyModule, type IdempotencyModuleOptions } from './idempotency.module.js';
export type { IdempotencyKeyValue } from './idempotency-key.js';
export { Idempotent, type IdempotentMethod } from './idempotent.decorator.js';
export {
  ListenerRegistry,
  type ListenerRegistryOptions,
  type ListenerSubscription,
  type RegistryHealth,
} from './listener/listener-registry.js';
export { MessageListener, type MessageListenerOptions } from './listener/message-listener.decorator.js';
export type { SettlementPolicyOptions } from './listener/settlement-policy.js';
export { type IdempotentFunction, type MakeIdempotentOptions, makeIdempotent } from './make-idempotent.js';
export {
  MemoryIdempotencyCache,
  type MemoryIdempotencyCacheOptions,
} from './memory/memory-idempotency-cache.js';
export {
  MemoryIdempotencyStore,
  type MemoryIdempotencyStoreOptions,
  MemoryTransaction,
} from './memory/memory-idempotency-store.js';
export { NoIdempotencyCache } from './memory/no-idempotency-cache.js';
export type {
  IdempotencyMode,
  IdempotencyPolicyOptions,
  IdempotentOptions,
} from './options.js';
export type { DuplicateTier, IdempotencyOutcome, OutcomeKind, OutcomeListener } from './outcome.js';
export type { CacheInvalidationListener, CacheInvalidations } from './ports/cache-invalidations.js';
export type { Clock } from './ports/clock.js';
export type { IdempotencyCache } from './ports/idempotency-cache.js';
export type {
  IdempotencyRecord,
  IdempotencyStore,
  PurgeOptions,
  RecordStatus,
  TokenRef,
} from './ports/idempotency-store.js';
export type { IdempotencyLogger } from './ports/logger.js';
export type { MessageTransport, TransportMessage } from './ports/message-transport.js';
export type { ReadinessCheck } from './ports/readiness.js';
export { checkReadiness, type Readiness, ReadinessError, type ReadinessOptions } from './readiness-check.js';
export {
  IDEMPOTENCY_CACHE,
  IDEMPOTENCY_CLOCK,
  IDEMPOTENCY_ENGINE,
  IDEMPOTENCY_INSTRUMENTATION,
  IDEMPOTENCY_LOGGER,
  IDEMPOTENCY_OPTIONS,
  IDEMPOTENCY_OUTCOME_LISTENER,
  IDEMPOTENCY_STORE,
  MESSAGE_TRANSPORT,
} from './tokens.js';
