/** The key space of a handler: explicit, or `<consumer group>:<Class>.<method>`, always versioned. */

import { buildScope } from './idempotency-key.js';
import { getMessageListener } from './metadata.js';
import type { IdempotentOptions } from './options.js';

type Ctor = abstract new (...args: never[]) => unknown;

/**
 * The scope of `method` as run on instances of `runtime` (the class the container built, which may be a
 * subclass of the one that declared the method): `v<version>:<name>`.
 */
export function scopeOf(
  runtime: Ctor,
  declaring: Ctor,
  method: string | symbol,
  options: IdempotentOptions<never>,
): string {
  const group = getMessageListener(runtime)?.consumerGroup;
  const name = options.scope ?? `${group ? `${group}:` : ''}${declaring.name}.${String(method)}`;
  return buildScope(name, options.scopeVersion ?? 1);
}
