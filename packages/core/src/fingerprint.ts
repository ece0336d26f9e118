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
      return quote(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new NotJsonError(`${value} is not a JSON number`);
      // What JSON.stringify prints for a finite number (-0 included), without a call into the runtime.
      return String(value);
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
  const isArray = Array.isArray(obj);
  // A plain object or an array is what a payload nearly always is: the other kinds are looked for only
  // in the rest (class instances included, which are written as their own enumerable members).
  if (!isArray && Object.getPrototypeOf(obj) !== Object.prototype) {
    if (ArrayBuffer.isView(obj)) {
      const bytes = Buffer.from(obj.buffer, obj.byteOffset, obj.byteLength).toString('base64');
      return `{"$bytes":"${bytes}"}`;
    }
    if (obj instanceof Date) return JSON.stringify(obj.toISOString());
    if (obj instanceof Map || obj instanceof Set)
      throw new NotJsonError(`a ${obj.constructor.name} is not JSON`);
  }
  path.push(obj);
  let out: string;
  if (isArray) {
    const list = obj as unknown[];
    out = '[';
    for (let i = 0; i < list.length; i++) {
      const item: unknown = list[i];
      out += (i > 0 ? ',' : '') + (item === undefined ? 'null' : write(item, path));
    }
    out += ']';
  } else {
    const record = obj as Record<string, unknown>;
    const keys = Object.keys(record);
    if (keys.length > 1) sortKeys(keys);
    out = '{';
    let first = true;
    for (const k of keys) {
      const item = record[k];
      if (item === undefined) continue;
      out += `${first ? '' : ','}${quote(k)}:${write(item, path)}`;
      first = false;
    }
    out += '}';
  }
  path.pop();
  return out;
}

/**
 * Sorts `keys` in place as `sort()` would (by UTF-16 code units): an insertion sort for the few keys a
 * payload's object has (no comparator calls, nothing to do when they are in order already), the
 * built-in sort past a dozen.
 */
function sortKeys(keys: string[]): void {
  if (keys.length > 12) {
    keys.sort();
    return;
  }
  for (let i = 1; i < keys.length; i++) {
    const key = keys[i] as string;
    let j = i - 1;
    while (j >= 0 && (keys[j] as string) > key) {
      keys[j + 1] = keys[j] as string;
      j--;
    }
    keys[j + 1] = key;
  }
}

/** Strings this long or longer go straight to JSON.stringify: its scan is faster than ours there. */
const SCANNED = 128;

/**
 * `text` as JSON.stringify quotes it. Most keys and values need no escape (no control character, quote,
 * backslash or surrogate): they are quoted here, without a call into the runtime.
 */
function quote(text: string): string {
  if (text.length >= SCANNED) return JSON.stringify(text);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return JSON.stringify(text);
  }
  return `"${text}"`;
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
