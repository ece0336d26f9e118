/**
 * The errors behind one failure, for the classifiers of connection drops and transient failures: the
 * error itself, its `cause` chain (the store's own errors carry the driver's there) and the `errors` of
 * an AggregateError (Node's dual-stack connect). Bounded, so that a cyclic chain ends.
 */

/** The fields drivers put on their errors: a string `code` (SQLSTATE, errno name), mysql2's numeric `errno`. */
export interface DriverErrorFields {
  readonly code?: unknown;
  readonly errno?: unknown;
  readonly name?: unknown;
  readonly message?: unknown;
}

const MAX_ERRORS = 16;

export function errorChain(error: unknown): DriverErrorFields[] {
  const seen = new Set<unknown>();
  const pending: unknown[] = [error];
  const chain: DriverErrorFields[] = [];
  while (pending.length > 0 && chain.length < MAX_ERRORS) {
    const next = pending.shift();
    if (typeof next !== 'object' || next === null || seen.has(next)) continue;
    seen.add(next);
    chain.push(next as DriverErrorFields);
    const { cause, errors } = next as { cause?: unknown; errors?: unknown };
    if (Array.isArray(errors)) pending.push(...errors);
    pending.push(cause);
  }
  return chain;
}
