/** @idempotent-mq/redis: the idempotency cache and store on an existing ioredis client (node or cluster). */
export { decodeCacheValue, encodeCacheValue } from './cache-value.js';
export { CorruptRecordError, RedisNotReadyError, RedisTimeoutError } from './errors.js';
export { type KeyKind, RedisKeyLayout } from './key-layout.js';
export {
  INVALIDATION_CHANNEL,
  RedisCacheInvalidations,
  type RedisCacheInvalidationsOptions,
} from './redis-cache-invalidations.js';
export { isUnavailable, type RedisClient } from './redis-client.js';
export {
  type InvalidCacheValue,
  RedisIdempotencyCache,
  type RedisIdempotencyCacheOptions,
} from './redis-idempotency-cache.js';
export { RedisIdempotencyStore, type RedisIdempotencyStoreOptions } from './redis-idempotency-store.js';
