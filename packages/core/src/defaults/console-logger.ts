import type { IdempotencyLogger } from '../ports/logger.js';

type Level = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/** Writes to the console at or above `level`. The default binding of `LOGGER`. */
export class ConsoleLogger implements IdempotencyLogger {
  constructor(private readonly level: Level = 'warn') {}

  debug(message: string, context?: Record<string, unknown>): void {
    this.write('debug', message, context);
  }
  info(message: string, context?: Record<string, unknown>): void {
    this.write('info', message, context);
  }
  warn(message: string, context?: Record<string, unknown>): void {
    this.write('warn', message, context);
  }
  error(message: string, context?: Record<string, unknown>): void {
    this.write('error', message, context);
  }

  private write(level: Exclude<Level, 'silent'>, message: string, context?: Record<string, unknown>): void {
    if (ORDER[level] < ORDER[this.level]) return;
    const line = `[idempotent-mq] ${level}: ${message}`;
    if (context === undefined) console[level](line);
    else console[level](line, context);
  }
}
