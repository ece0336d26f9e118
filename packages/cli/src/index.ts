/**
 * @idempotent-mq/cli: the `idempotent-mq` operator CLI (migrate, inspect, forget, purge, stats, dlq), and
 * what a config file or an embedding program uses: `defineConfig`, the dead-letter source shape, `run`.
 */

export {
  CONFIG_FILES,
  type CustomCacheConfig,
  type CustomStoreConfig,
  defineConfig,
  ENVIRONMENT,
  type IdempotentMqConfig,
  type KnexStoreConfig,
  type RedisCacheConfig,
  type RedisStoreConfig,
} from './config.js';
export {
  type DeadLetter,
  type DeadLetterSource,
  type DeadLetterSourceConfig,
  type InMemoryDeadLetterBroker,
  inMemoryDeadLetterSource,
} from './dead-letters.js';
export { CliError, type CliErrorCode, ExitCode, type ExitCodeValue } from './exit-codes.js';
export type { CommandResult } from './output.js';
export { type CliIo, EXIT_CODE_HELP, run } from './run.js';
