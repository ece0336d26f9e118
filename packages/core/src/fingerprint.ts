/**
 * Payload fingerprints: SHA-256 over canonical JSON, so that object key order does not matter and
 * array order does. Bytes (Buffer, Uint8Array) are hashed as they are.
 */
import { createHash } from 'node:crypto';

/** Thrown by {@link canonicalJson} for values JSON cannot hold. */
export class NotJsonError extends Error {}

/** JSON with object keys sorted at every depth; rejects cycles, functions, symbols, bigints, NaN. */
export function canonicalJson(value: unknown): string {
  return write(value, new Set());
}

function write(value: unknown, seen: Set<object>): string {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new NotJsonError(`${value} is not a JSON number`);
      return JSON.stringify(value);
    case 'undefined':
      throw new NotJsonError('undefined is not JSON');
    case 'bigint':
    case 'function':
    case 'symbol':
      throw new NotJsonError(`a ${typeof value} is not JSON`);
  }
  if (value === null) return 'null';
  const obj = value as object;
  if (seen.has(obj)) throw new NotJsonError('the value has a cycle');
  seen.add(obj);
  try {
    if (ArrayBuffer.isView(obj)) {
      const bytes = obj as ArrayBufferView;
      return JSON.stringify({
        $bytes: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64'),
      });
    }
    if (obj instanceof Date) return JSON.stringify(obj.toISOString());
    if (Array.isArray(obj)) {
      return `[${obj.map((item) => (item === undefined ? 'null' : write(item, seen))).join(',')}]`;
    }
    if (obj instanceof Map || obj instanceof Set)
      throw new NotJsonError(`a ${obj.constructor.name} is not JSON`);
    const record = obj as Record<string, unknown>;
    const keys = Object.keys(record)
      .filter((k) => record[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${write(record[k], seen)}`).join(',')}}`;
  } finally {
    seen.delete(obj);
  }
}

/** SHA-256 (base64url) of the payload: raw bytes as they are, anything else as canonical JSON. */
export function fingerprint(payload: unknown): string {
  const hash = createHash('sha256');
  if (typeof payload === 'string') hash.update(`s${payload}`, 'utf8');
  else if (ArrayBuffer.isView(payload)) {
    hash.update('b');
    hash.update(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength));
  } else hash.update(`j${canonicalJson(payload)}`, 'utf8');
  return hash.digest('base64url');
}
