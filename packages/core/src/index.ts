/** @idempotent-mq/core: the engine, its decorator, ports, memory adapters and the inversify module. */
export { type Backoff, backoffDelay, checkBackoff } from './backoff.js';
export { BaseIdempotencyStore, type BaseIdempotencyStoreOptions } from './base-idempotency-store.js';
export { BODY_CODECS, type BodyCodec, type DecodeResult, decodeBody, encodeBody } from './body-codec.js';
export { NearIdempotencyCache, type NearIdempotencyCacheOptions } from './cache/near-idempotency-cache.js';
export {
  type DeliveryInfo,
  type DeliverySubscription,
  deliveryInfo,
  type IdempotencyContext,
  type IdempotentView,
  idempotentView,
  isDeliveryInfo,
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
export { canonicalJson, fingerprint } from './fingerprint.js';
export { IdempotencyModule, type IdempotencyModuleOptions } from './idempotency.module.js';
export {
  type Execution,
  type HandlerMethod,
  IdempotencyEngine,
  type IdempotencyEngineDeps,
} from './idempotency-engine.js';
export {
  buildScope,
  canonicalKey,
  codePointLength,
  type IdempotencyKeyValue,
  tokenId,
} from './idempotency-key.js';
export { Idempotent, type IdempotentMethod } from './idempotent.decorator.js';
export { type ClassBinding, classBindings } from './listener/binding-discovery.js';
export {
  ListenerRegistry,
  type ListenerRegistryOptions,
  type ListenerSubscription,
  type RegistryHealth,
} from './listener/listener-registry.js';
export {
  DEFAULT_LISTENER,
  MessageListener,
  type MessageListenerOptions,
  validateListenerOptions,
} from './listener/message-listener.decorator.js';
export {
  failureBackoff,
  SettlementPolicy,
  type SettlementPolicyOptions,
} from './listener/settlement-policy.js';
export {
  type IdempotentFunction,
  type MakeIdempotentOptions,
  makeIdempotent,
} from './make-idempotent.js';
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
export {
  getHandlerMethod,
  getIdempotentMethods,
  getIdempotentOptions,
  getMessageListener,
  type MessageListenerMetadata,
  setMessageListener,
} from './metadata.js';
export {
  booleanOption,
  checkOptionsObject,
  enumOption,
  functionOption,
  integerOption,
  MAX_TIMER_MS,
  nearestName,
  optionName,
  textOption,
} from './option-checks.js';
export {
  DEFAULT_POLICY,
  type IdempotencyMode,
  type IdempotencyPolicyOptions,
  type IdempotentOptions,
  validateIdempotentOptions,
  validatePolicy,
} from './options.js';
export type { DuplicateTier, IdempotencyOutcome, OutcomeKind, OutcomeListener } from './outcome.js';
export type { Clock } from './ports/clock.js';
export type { CachedCompletion, CacheInspection, IdempotencyCache } from './ports/idempotency-cache.js';
export type {
  ClaimRequest,
  ClaimResult,
  CompleteRequest,
  ForgetOptions,
  ForgetResult,
  IdempotencyRecord,
  IdempotencyStore,
  RecordInspection,
  RecordStatus,
  StatsOptions,
  StoreStats,
  TokenRef,
} from './ports/idempotency-store.js';
export type {
  IdempotencyInstrumentation,
  InstrumentedHandler,
  MessageProbe,
  StepOperation,
  StepTarget,
  StepTiming,
} from './ports/instrumentation.js';
export type { IdempotencyLogger } from './ports/logger.js';
export type {
  MessageTransport,
  Settlement,
  SubscriptionSpec,
  TransportMessage,
  TransportProfile,
} from './ports/message-transport.js';
export type { CheckedPort, ReadinessCheck, ReadinessRequest } from './ports/readiness.js';
export {
  checkReadiness,
  formatCheck,
  type Readiness,
  ReadinessError,
  type ReadinessOptions,
} from './readiness-check.js';
export { scopeOf } from './scope.js';
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
export { injectTraceContext, setTraceContextInjector, type TraceContextInjector } from './trace-context.js';
export { isSettlement, isWait, settlementsOf, sleepUnless, type Wait } from './transport-kit.js';
