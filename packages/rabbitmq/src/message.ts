/**
 * How a RabbitMQ message maps onto the port's `TransportMessage`, and how a copy of it is made when
 * the transport sends it on (to a retry queue, back to its queue, to the dead-letter queue).
 */
import type { TransportMessage } from '@idempotent-mq/core';
import { cutText } from '@idempotent-mq/core/adapter';
import type { Message, Options } from 'amqplib';
import { type BodyCodec, decodeBody } from './codec.js';
import { HEADERS } from './topology.js';

const OURS = 'idempotent-mq-';

/** The business keys: our keys header (a JSON array), else the `messageId` property as one key. */
export function keysOf(message: Message): string[] {
  const raw = text(message.properties.headers?.[HEADERS.keys]);
  if (raw !== undefined) {
    try {
      const parsed: unknown = JSON.parse(raw);
      if (Array.isArray(parsed) && parsed.every((k) => typeof k === 'string')) return parsed;
    } catch {
      // not ours: fall back to the messageId
    }
  }
  const id = message.properties.messageId;
  return typeof id === 'string' && id !== '' ? [id] : [];
}

/** The delivery attempt our header records (1 when absent): RabbitMQ counts nothing itself. */
export function attemptOf(message: Message): number {
  const raw = message.properties.headers?.[HEADERS.attempt];
  const n = typeof raw === 'number' ? raw : Number(text(raw));
  return Number.isInteger(n) && n >= 1 ? n : 1;
}

/** The routing key the message was first published with; a copy sent on keeps it in a header. */
export function routingKeyOf(message: Message): string {
  return text(message.properties.headers?.[HEADERS.routingKey]) ?? message.fields.routingKey;
}

/** A message as handlers see it, or why its body cannot be decoded (a reason to dead-letter it). */
export function toTransportMessage(
  message: Message,
  topic: string,
  codec: BodyCodec,
  deliveryAttempt: number,
): { ok: true; message: TransportMessage } | { ok: false; reason: string } {
  const decoded = decodeBody(codec, message.content);
  if (!decoded.ok) return decoded;
  const tag = routingKeyOf(message);
  const bornAt = bornAtOf(message);
  return {
    ok: true,
    message: {
      messageId: typeof message.properties.messageId === 'string' ? message.properties.messageId : '',
      topic,
      keys: keysOf(message),
      ...(tag !== '' ? { tag } : {}),
      body: decoded.body,
      properties: userProperties(message.properties.headers),
      deliveryAttempt,
      ...(bornAt !== undefined ? { bornAt } : {}),
    },
  };
}

/**
 * The publish options of a copy of `message`: its properties and headers, made persistent, with the
 * original routing key kept and `headers` of ours set. Left out: RabbitMQ's own dead-lettering headers
 * (`x-death` …, rewritten by some versions), `CC`/`BCC` (they would route the copy to more queues),
 * `expiration` (a per-message TTL would cut a retry's wait short) and `userId` (RabbitMQ checks it
 * against the publishing user).
 */
export function copyOptions(message: Message, headers: Record<string, string | number>): Options.Publish {
  const p = message.properties;
  const kept: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(p.headers ?? {})) {
    if (name.startsWith('x-death') || name.startsWith('x-first-death-') || name.startsWith('x-last-death-'))
      continue;
    if (name === 'CC' || name === 'BCC') continue;
    kept[name] = value;
  }
  return {
    persistent: true,
    contentType: p.contentType,
    contentEncoding: p.contentEncoding,
    correlationId: p.correlationId,
    replyTo: p.replyTo,
    messageId: p.messageId,
    timestamp: p.timestamp,
    type: p.type,
    appId: p.appId,
    priority: p.priority,
    headers: { ...kept, [HEADERS.routingKey]: routingKeyOf(message), ...headers },
  };
}

/** A reason fit for a header (the whole header table must stay under 64 KiB). */
export function reasonHeader(reason: string): string {
  return cutText(reason, 1000);
}

/** The producer's headers, as strings: ours (`idempotent-mq-*`) and RabbitMQ's (`x-*`) left out. */
function userProperties(headers: Record<string, unknown> | undefined): Record<string, string> {
  const properties: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (name.startsWith(OURS) || name.startsWith('x-') || name === 'CC' || name === 'BCC') continue;
    if (typeof value === 'string') properties[name] = value;
    else if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
      properties[name] = String(value);
    } else if (Buffer.isBuffer(value)) properties[name] = value.toString('utf8');
  }
  return properties;
}

/** Our born-at header (ms), else the AMQP `timestamp` property (seconds by convention; ms if it is that large). */
function bornAtOf(message: Message): number | undefined {
  const header = Number(message.properties.headers?.[HEADERS.bornAt]);
  if (Number.isFinite(header) && header > 0) return header;
  const timestamp = Number(message.properties.timestamp);
  if (!Number.isFinite(timestamp) || timestamp <= 0) return undefined;
  return timestamp > 1e11 ? timestamp : timestamp * 1000;
}

function text(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  return undefined;
}
