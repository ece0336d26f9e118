/**
 * Where a token lives in Redis: `<prefix>{<scope tag>}:<kind>:<key part>`.
 * - The scope tag is a short hash of the scope, so it is safe for any scope text and puts one scope's
 *   keys in one cluster slot (a batch of one scope is one MGET or one script call).
 * - The key part is `=` and the key as it is, or `#` and a hash when the key is longer than
 *   `maxKeyBytes` (or not well-formed UTF-16), so a key name stays bounded and two keys never collide.
 */
import { createHash } from 'node:crypto';
import { InvalidOptionError, type TokenRef } from '@idempotent-mq/core';
import { isWellFormedText } from '@idempotent-mq/core/adapter';

export type KeyKind = 'cache' | 'record';

const KIND_SEGMENT: Record<KeyKind, string> = { cache: 'c', record: 's' };
const TAG_LENGTH = 16; // 96 bits of SHA-256: scopes would collide only by accident of astronomically low odds

// UTF-16 code units, not UTF-8: two strings with different lone surrogates would encode alike in UTF-8.
function digest(text: string): string {
  return createHash('sha256').update(Buffer.from(text, 'utf16le')).digest('base64url');
}

const MAX_MEMO_SCOPES = 1024;

/** Names the Redis keys of tokens (`<prefix>{<scope tag>}:<kind>:<key part>`), memoising scope tags; shared by the store and the cache. */
export class RedisKeyLayout {
  private readonly tags = new Map<string, string>();

  constructor(
    readonly prefix: string,
    readonly maxKeyBytes: number,
  ) {
    if (typeof prefix !== 'string' || /[{}]/.test(prefix) || prefix.length > 256) {
      throw new InvalidOptionError('keyPrefix', 'a string of at most 256 characters without { or }', prefix);
    }
    if (!Number.isInteger(maxKeyBytes) || maxKeyBytes < 16 || maxKeyBytes > 65_536) {
      throw new InvalidOptionError('maxKeyBytes', 'an integer from 16 to 65 536', maxKeyBytes);
    }
  }

  /** The hash tag of a scope: base64url characters only, never `{` or `}`. */
  scopeTag(scope: string): string {
    // A handful of scopes serve every message: hash each once (bounded, in case scopes are dynamic).
    let tag = this.tags.get(scope);
    if (tag === undefined) {
      tag = digest(scope).slice(0, TAG_LENGTH);
      if (this.tags.size >= MAX_MEMO_SCOPES) this.tags.clear();
      this.tags.set(scope, tag);
    }
    return tag;
  }

  key(kind: KeyKind, token: TokenRef): string {
    return `${this.prefix}{${this.scopeTag(token.scope)}}:${KIND_SEGMENT[kind]}:${this.keyPart(token.key)}`;
  }

  /** A SCAN pattern for every key of `kind` under this prefix, and nothing else. */
  pattern(kind: KeyKind): string {
    return `${escapeGlob(this.prefix)}{${'?'.repeat(TAG_LENGTH)}}:${KIND_SEGMENT[kind]}:*`;
  }

  /** Indexes of `tokens` (anything with a scope) grouped by scope tag, i.e. by cluster slot. */
  groupBySlot(tokens: readonly Pick<TokenRef, 'scope'>[]): number[][] {
    const groups = new Map<string, number[]>();
    tokens.forEach((token, i) => {
      const tag = this.scopeTag(token.scope);
      const group = groups.get(tag);
      if (group) group.push(i);
      else groups.set(tag, [i]);
    });
    return [...groups.values()];
  }

  private keyPart(key: string): string {
    // A UTF-16 code unit takes at most 3 bytes in UTF-8, so most keys skip the byte count.
    const short = key.length * 3 <= this.maxKeyBytes || Buffer.byteLength(key, 'utf8') <= this.maxKeyBytes;
    return short && isWellFormedText(key) ? `=${key}` : `#${digest(key)}`;
  }
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}
