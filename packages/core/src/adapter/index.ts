/**
 * `@idempotent-mq/core/adapter`: everything of the main entry, and what an adapter or a transport author
 * needs besides — the store's claim lifecycle written once, the port types in full, the option checks,
 * the backoff, the body codecs, the transport kit and the settlement policy, the metadata accessors, the
 * key and fingerprint functions, the engine itself and its instrumentation port.
 */

export { type Backoff, backoffDelay, checkBackoff } from '../backoff.js';
export { BaseIdempotencyStore, type BaseIdempotencyStoreOptions } from '../base-idempotency-store.js';
export { BODY_CODECS, type BodyCodec, type DecodeResult, decodeBody, encodeBody } from '../body-codec.js';
export { type DeliverySubscription, isDeliveryInfo } from '../context.js';
export type { DeadLetter, DeadLetterSource } from '../dead-letter.js';
export { canonicalJson, fingerprint } from '../fingerprint.js';
export {
  type Execution,
  type HandlerMethod,
  IdempotencyEngine,
  type IdempotencyEngineDeps,
} from '../idempotency-engine.js';
export { buildScope, canonicalKey, tokenId } from '../idempotency-key.js';
export * from '../index.js';
export { type ClassBinding, classBindings } from '../listener/binding-discovery.js';
export { DEFAULT_LISTENER, validateListenerOptions } from '../listener/message-listener.decorator.js';
export { failureBackoff, SettlementPolicy } from '../listener/settlement-policy.js';
export { type TransportListenerRules, transportListener } from '../listener/transport-listener.js';
export {
  getHandlerMethod,
  getIdempotentMethods,
  getIdempotentOptions,
  getMessageListener,
  type MessageListenerMetadata,
  setMessageListener,
} from '../metadata.js';
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
} from '../option-checks.js';
export { DEFAULT_POLICY, validateIdempotentOptions, validatePolicy } from '../options.js';
export type { CachedCompletion, CacheInspection } from '../ports/idempotency-cache.js';
export type {
  ClaimRequest,
  ClaimResult,
  CompleteRequest,
  ForgetOptions,
  ForgetResult,
  PurgeOptions,
  RecordInspection,
  StatsOptions,
  StoreStats,
} from '../ports/idempotency-store.js';
export type {
  IdempotencyInstrumentation,
  InstrumentedHandler,
  MessageProbe,
  StepOperation,
  StepTarget,
  StepTiming,
} from '../ports/instrumentation.js';
export type {
  SettledEvent,
  Settlement,
  SubscriptionSpec,
  TransportProfile,
} from '../ports/message-transport.js';
export type { CheckedPort, ReadinessRequest } from '../ports/readiness.js';
export { type PublishedKeyRules, publishedKeys } from '../published-keys.js';
export { PurgePacer, purgePauseOption } from '../purge-pacing.js';
export { formatCheck } from '../readiness-check.js';
export {
  carryOutInPlace,
  handleReceivedBatch,
  type InPlaceSteps,
  type ReceivedBatchSteps,
  type ReceivedMessage,
} from '../received-batch.js';
export { scopeOf } from '../scope.js';
export { codePointLength, cutText, firstCodePoints, isWellFormedText } from '../text.js';
export { type TimeoutOptions, withTimeout } from '../timeout.js';
export { injectTraceContext, setTraceContextInjector, type TraceContextInjector } from '../trace-context.js';
export { isSettlement, isWait, settlementsOf, sleepUnless, type Wait } from '../transport-kit.js';
export {
  BACKOFF_OPTIONS,
  backoffOption,
  CONSOLE_WARNINGS,
  codecOption,
  loggerOption,
  type TransportLogger,
} from '../transport-options.js';
