/**
 * Payload fingerprints: SHA-256 over canonical JSON, so that object key order does not matter and
 * array order does. Bytes (Buffer, Uint8Array) are hashed as they are.
 *
 * Both run once per message on the hot path, so they are written for speed: one-shot hashing, plain
 * loops, and a cycle check on the current path (an array as deep as the value) rather than a Set.
 */
import { hash } from 'node:crypto';

/** Thrown by {@link canonicalJson} for values JSON cannot hold. */
export class NotJsonError extends Error {}

/** JSON with object keys sorted at every depth; rejects cycles, functions, symbols, bigints, NaN. */
export function canonicalJson(value: unknown): string {
  return write(value, []);
}

function write(value: unknown, path: object[]): string {
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
  if (path.includes(obj)) throw new NotJsonError('the value has a cycle');
  if (ArrayBuffer.isView(obj)) {
    const bytes = Buffer.from(obj.buffer, obj.byteOffset, obj.byteLength).toString('base64');
    return `{"$bytes":${JSON.stringify(bytes)}}`;
  }
  if (obj instanceof Date) return JSON.stringify(obj.toISOString());
  if (obj instanceof Map || obj instanceof Set)
    throw new NotJsonError(`a ${obj.constructor.name} is not JSON`);
  path.push(obj);
  let out: string;
  if (Array.isArray(obj)) {
    out = '[';
    for (let i = 0; i < obj.length; i++) {
      const item: unknown = obj[i];
      out += (i > 0 ? ',' : '') + (item === undefined ? 'null' : write(item, path));
    }
    out += ']';
  } else {
    const record = obj as Record<string, unknown>;
    const keys = Object.keys(record);
    if (keys.length > 1) keys.sort();
    out = '{';
    let first = true;
    for (const k of keys) {
      const item = record[k];
      if (item === undefined) continue;
      out += `${first ? '' : ','}${JSON.stringify(k)}:${write(item, path)}`;
      first = false;
    }
    out += '}';
  }
  path.pop();
  return out;
}

/** SHA-256 (base64url) of the payload: raw bytes as they are, anything else as canonical JSON. */
export function fingerprint(payload: unknown): string {
  if (typeof payload === 'string') return hash('sha256', `s${payload}`, 'base64url');
  if (ArrayBuffer.isView(payload)) {
    const bytes = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    return hash('sha256', Buffer.concat([Buffer.from('b'), bytes]), 'base64url');
  }
  return hash('sha256', `j${canonicalJson(payload)}`, 'base64url');
}
