/**
 * The option checks every transport makes of its clients (transport, publisher, listener decorator),
 * written once over core's option checks, so that the three brokers refuse a misspelt name, a logger
 * without its methods, a codec or a backoff alike.
 */
import { type Backoff, checkBackoff } from './backoff.js';
import { BODY_CODECS, type BodyCodec } from './body-codec.js';
import { InvalidOptionError } from './errors.js';
import { checkOptionsObject, enumOption, optionName } from './option-checks.js';

/** The logger a transport's clients write to: printf-style, as `console` and core's `ConsoleLogger`. */
export interface TransportLogger {
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
  debug?(...args: unknown[]): void;
}

/** A transport's logger when none is given: warnings and errors to the console, nothing else. */
export const CONSOLE_WARNINGS: TransportLogger = Object.freeze({
  info: () => undefined,
  warn: (...args: unknown[]) => console.warn(...args),
  error: (...args: unknown[]) => console.error(...args),
});

/** The names a {@link Backoff} takes. */
export const BACKOFF_OPTIONS: readonly string[] = Object.freeze([
  'initialMs',
  'maxMs',
  'multiplier',
  'jitter',
]);

/** Checks a `logger` option: absent, or an object with `info`, `warn` and `error` methods. */
export function loggerOption(where: string, option: string, value: unknown): TransportLogger | undefined {
  if (value === undefined) return undefined;
  const logger = value as Partial<TransportLogger> | null;
  if (
    typeof logger?.info !== 'function' ||
    typeof logger.warn !== 'function' ||
    typeof logger.error !== 'function'
  ) {
    throw new InvalidOptionError(
      optionName(where, option),
      'an object with info, warn and error methods',
      value,
    );
  }
  return value as TransportLogger;
}

/** Checks a `codec` option: one of {@link BODY_CODECS}; `fallback` when it is not set. */
export function codecOption(where: string, option: string, value: unknown, fallback: BodyCodec): BodyCodec {
  return enumOption(where, option, value, BODY_CODECS, fallback) as BodyCodec;
}

/**
 * Checks a {@link Backoff} option, its names included (`initialMS` → did you mean `initialMs`?); answers
 * it with `fallback`'s values where it has none.
 */
export function backoffOption(
  where: string,
  option: string,
  value: unknown,
  fallback: Backoff,
): Required<Backoff> {
  const name = optionName(where, option);
  if (typeof value === 'object' && value !== null) checkOptionsObject(value, BACKOFF_OPTIONS, name);
  return checkBackoff(name, value, fallback);
}
