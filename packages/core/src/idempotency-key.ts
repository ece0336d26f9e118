/**
 * From what a key function returns to the stored key: canonical, collision-free, bounded in length.
 */
import { hash } from 'node:crypto';
import type { TokenRef } from './model/record.js';
import { codePointLength, firstCodePoints } from './text.js';

/** What a key function may return. An array (a broker's message keys) is joined canonically. */
export type IdempotencyKeyValue = string | readonly string[] | undefined | null;

/** Either the canonical key, or why there is none. */
export type KeyResolution = { readonly key: string } | { readonly missing: string };

const SEPARATOR = ',';
/** Never produced by {@link joinParts}: a backslash there is always followed by `\` or `,`. */
const HASH_MARK = '\\#';

/**
 * Turns a key function's value into the canonical key, or names why it is missing.
 * - a string is used as is;
 * - an array is joined with `,`, after escaping `\` and `,` inside parts, so that `["a,b"]` and
 *   `["a", "b"]` can never collide; a one-element array equals its string;
 * - longer than `maxLength` code points: a readable prefix, `\#`, and a SHA-256 of the whole key.
 */
export function canonicalKey(value: unknown, maxLength: number): KeyResolution {
  const parts = typeof value === 'string' ? [value] : Array.isArray(value) ? (value as unknown[]) : undefined;
  if (parts === undefined) {
    return {
      missing:
        value === undefined || value === null
          ? 'the key is missing'
          : `the key is a ${typeof value}, not a string`,
    };
  }
  if (parts.length === 0) return { missing: 'the key list is empty' };
  for (const part of parts) {
    if (typeof part !== 'string')
      return { missing: `a key part is a ${part === null ? 'null' : typeof part}, not a string` };
    if (part.trim() === '')
      return { missing: part === '' ? 'the key is empty' : 'the key is only whitespace' };
  }
  return { key: bound(joinParts(parts as string[]), maxLength) };
}

function joinParts(parts: readonly string[]): string {
  if (parts.length === 1) return escapePart(parts[0] as string);
  return parts.map(escapePart).join(SEPARATOR);
}

function escapePart(part: string): string {
  return part.includes('\\') || part.includes(SEPARATOR) ? part.replace(/[\\,]/g, (c) => `\\${c}`) : part;
}

const DIGEST_LENGTH = 43; // SHA-256 in base64url

function bound(key: string, maxLength: number): string {
  // Cheap exit: UTF-16 length >= code points, so a short string is short in code points too.
  if (key.length <= maxLength || codePointLength(key) <= maxLength) return key;
  const digest = hash('sha256', key, 'base64url');
  const room = maxLength - HASH_MARK.length - DIGEST_LENGTH;
  let prefix = '';
  if (room > 0) {
    prefix = firstCodePoints(key, room);
    // An odd run of trailing backslashes would let the prefix swallow the hash mark's backslash.
    const trailing = prefix.length - prefix.replace(/\\+$/, '').length;
    if (trailing % 2 === 1) prefix = prefix.slice(0, -1);
  }
  return `${prefix}${HASH_MARK}${digest}`;
}

/** The shortest `maxKeyLength` that still leaves room for the hash of an over-long key. */
export const MIN_KEY_LENGTH = HASH_MARK.length + DIGEST_LENGTH;

/** `v<version>:<name>`: the version lets a refactor keep (or deliberately change) the key space. */
export function buildScope(name: string, version: string | number): string {
  return `v${version}:${name}`;
}

/**
 * One string per token, for in-memory maps. A scope never holds U+0000 (refused at start-up, in the
 * `scope` option and in consumer group names), so the first NUL ends it, whatever the key holds.
 */
export function tokenId(token: TokenRef): string {
  return `${token.scope}\u0000${token.key}`;
}
