/**
 * pino (and any logger with pino's `(object, message)` signature: bunyan, a pino child) as the engine's
 * logger, context object included: `container.rebind(IDEMPOTENCY_LOGGER).toConstantValue(pinoLogger(pino()))`.
 */
import type { IdempotencyLogger } from '../ports/logger.js';

/** The four levels of a pino logger the engine writes to. */
export interface PinoLike {
  debug(object: Record<string, unknown>, message?: string): void;
  info(object: Record<string, unknown>, message?: string): void;
  warn(object: Record<string, unknown>, message?: string): void;
  error(object: Record<string, unknown>, message?: string): void;
}

/** Adapts a pino logger: the engine's context becomes pino's merging object, the message its `msg`. */
export function pinoLogger(pino: PinoLike): IdempotencyLogger {
  const at =
    (level: keyof PinoLike) =>
    (message: string, context?: Record<string, unknown>): void =>
      pino[level]({ lib: 'idempotent-mq', ...context }, message);
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
