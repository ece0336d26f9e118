/**
 * The option checks of every package, written once: each failure is an {@link InvalidOptionError} that
 * names the option (`where.option`), says what it accepts, and shows the value as it was given. Adapter
 * and transport authors use the same helpers, so that every message reads alike.
 */
import { InvalidOptionError } from './errors.js';

/** The largest delay a Node timer honours (about 24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** `where.option`, or `option` alone when there is no `where`. */
export function optionName(where: string, option: string): string {
  return where ? `${where}.${option}` : option;
}

/**
 * Checks that `options` is a plain options object and that every name in it is one of `known`; an
 * unknown name fails with the nearest known one (`ttlMz` → did you mean `ttlMs`?). `undefined` passes
 * (no options given).
 */
export function checkOptionsObject(options: unknown, known: readonly string[], where: string): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new InvalidOptionError(where, 'an options object', options);
  }
  for (const name of Object.keys(options)) {
    if (known.includes(name)) continue;
    const nearest = nearestName(name, known);
    throw new InvalidOptionError(
      optionName(where, name),
      nearest
        ? `no such option; did you mean "${nearest}"?`
        : `one of ${known.map((k) => `"${k}"`).join(', ')}`,
      (options as Record<string, unknown>)[name],
    );
  }
}

/** An integer option from `min` to `max`; `fallback` when it is not set. */
export function integerOption(
  where: string,
  option: string,
  value: unknown,
  range: { readonly min: number; readonly max: number },
): number | undefined;
export function integerOption(
  where: string,
  option: string,
  value: unknown,
  range: { readonly min: number; readonly max: number; readonly fallback: number },
): number;
export function integerOption(
  where: string,
  option: string,
  value: unknown,
  range: { readonly min: number; readonly max: number; readonly fallback?: number },
): number | undefined {
  if (value === undefined) return range.fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < range.min || value > range.max) {
    throw new InvalidOptionError(
      optionName(where, option),
      `an integer from ${range.min} to ${range.max}`,
      value,
    );
  }
  return value;
}

/** One of `accepted`; `fallback` when it is not set. */
export function enumOption<T extends string>(
  where: string,
  option: string,
  value: unknown,
  accepted: readonly T[],
  fallback?: T,
): T | undefined {
  if (value === undefined) return fallback;
  if (!accepted.includes(value as T)) {
    throw new InvalidOptionError(
      optionName(where, option),
      `one of ${accepted.map((a) => `'${a}'`).join(', ')}`,
      value,
    );
  }
  return value as T;
}

/** A boolean option; `fallback` when it is not set. */
export function booleanOption(
  where: string,
  option: string,
  value: unknown,
  fallback?: boolean,
): boolean | undefined {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean')
    throw new InvalidOptionError(optionName(where, option), 'true or false', value);
  return value;
}

/** A function option (`what` says its shape, e.g. `'a function (message) => string'`). */
export function functionOption(where: string, option: string, value: unknown, what = 'a function'): void {
  if (value !== undefined && typeof value !== 'function') {
    throw new InvalidOptionError(optionName(where, option), what, value);
  }
}

/** A string that is not blank. */
export function textOption(where: string, option: string, value: unknown, what = 'a non-empty string'): void {
  if (value !== undefined && (typeof value !== 'string' || value.trim() === '')) {
    throw new InvalidOptionError(optionName(where, option), what, value);
  }
}

/** The known name closest to `name` by edit distance, if it is close enough to be a typo of it. */
export function nearestName(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of known) {
    const d = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(best.length / 3)) ? best : undefined;
}

/** Levenshtein distance, with a transposition counted as one edit (`concurency`, `tabelName`). */
function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) =>
    Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min((d[i - 1] as number[])[j] as number, (d[i] as number[])[j - 1] as number) + 1;
      v = Math.min(v, ((d[i - 1] as number[])[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        v = Math.min(v, ((d[i - 2] as number[])[j - 2] as number) + 1);
      }
      (d[i] as number[])[j] = v;
    }
  }
  return (d[a.length] as number[])[b.length] as number;
}
