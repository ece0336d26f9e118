/**
 * Message bodies on the wire are bytes; handlers see them decoded by a codec. A body the codec cannot
 * decode is reported, never thrown past a transport's receive loop: the transport dead-letters it with
 * the reason. One set of codecs for every transport.
 */
import { cutText } from './text.js';

/** `json`: UTF-8 JSON (the default); `utf8`: a string; `buffer`: the raw bytes. */
export type BodyCodec = 'json' | 'utf8' | 'buffer';

/** Every codec, for option checks. */
export const BODY_CODECS: readonly BodyCodec[] = ['json', 'utf8', 'buffer'];

/** A decoded body, or why it cannot be decoded (the transport dead-letters it with that reason). */
export type DecodeResult = { ok: true; body: unknown } | { ok: false; reason: string };

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes a body a broker delivered; never throws. */
export function decodeBody(codec: BodyCodec, bytes: Uint8Array): DecodeResult {
  if (codec === 'buffer')
    return { ok: true, body: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    return { ok: false, reason: `the body (${bytes.length} bytes) is not valid UTF-8 (codec "${codec}")` };
  }
  if (codec === 'utf8') return { ok: true, body: text };
  try {
    return { ok: true, body: JSON.parse(text) as unknown };
  } catch (error) {
    const preview = cutText(text, 60);
    return {
      ok: false,
      reason: `the body is not valid JSON (codec "json"): ${error instanceof Error ? error.message : String(error)}; body starts ${JSON.stringify(preview)}`,
    };
  }
}

/** Encodes a body for sending; throws (the publisher wraps it) when the codec cannot hold the value. */
export function encodeBody(codec: BodyCodec, body: unknown): Buffer {
  if (codec === 'buffer') {
    if (Buffer.isBuffer(body)) return body;
    if (body instanceof Uint8Array) return Buffer.from(body);
    throw new TypeError(`codec "buffer" needs a Buffer or Uint8Array, got ${typeof body}`);
  }
  if (codec === 'utf8') {
    if (typeof body !== 'string') throw new TypeError(`codec "utf8" needs a string, got ${typeof body}`);
    return Buffer.from(body, 'utf8');
  }
  const json = JSON.stringify(body);
  if (json === undefined) throw new TypeError(`codec "json" cannot encode ${typeof body}`);
  return Buffer.from(json, 'utf8');
}
