/**
 * The headers this package reads and writes, in one place: the business keys a publisher sets, and what
 * a dead letter carries about where it came from and why.
 */

import { cutText } from '@idempotent-mq/core/adapter';
import type { MsgHdrs } from '@nats-io/transport-node';

/** JetStream's own de-duplication header: a resend with the same id within the duplicate window is dropped. */
export const NATS_MSG_ID = 'Nats-Msg-Id';
/** Every business key of a message, as a JSON array of strings (a message may have several). */
export const KEYS_HEADER = 'Idempotent-Mq-Keys';
/** Why the registry gave up on a dead-lettered message. */
export const DLQ_REASON = 'Idempotent-Mq-Dead-Letter-Reason';
/** The subject the dead-lettered message was published to. */
export const DLQ_SUBJECT = 'Idempotent-Mq-Original-Subject';
/** The stream that held the original message. */
export const DLQ_STREAM = 'Idempotent-Mq-Original-Stream';
/** The original message's sequence in that stream. */
export const DLQ_SEQUENCE = 'Idempotent-Mq-Original-Sequence';
/** The consumer group (durable) that gave up on it. */
export const DLQ_GROUP = 'Idempotent-Mq-Consumer-Group';
/** The delivery attempt on which the group gave up on it. */
export const DLQ_ATTEMPT = 'Idempotent-Mq-Delivery-Attempt';

/** The longest header value written (a reason is cut there): headers are not for essays. */
const MAX_HEADER_VALUE = 1024;

/** The keys header's value: JSON, so that `["a,b"]` and `["a", "b"]` never read the same. */
export function encodeKeys(keys: readonly string[]): string {
  return JSON.stringify(keys);
}

/**
 * The business keys of a received message: our keys header if the publisher set it, else the
 * `Nats-Msg-Id` another producer set, else none (the engine then treats the message as keyless).
 */
export function keysOf(headers: MsgHdrs | undefined): string[] {
  const raw = headers?.get(KEYS_HEADER);
  if (raw) {
    try {
      const parsed: unknown = JSON.parse(raw);
      if (Array.isArray(parsed) && parsed.every((k) => typeof k === 'string')) return parsed;
    } catch {
      // Not ours after all: fall back to the message id below.
    }
  }
  const id = headers?.get(NATS_MSG_ID);
  return id ? [id] : [];
}

/** Every header of a message as plain strings (the first value of each). */
export function propertiesOf(headers: MsgHdrs | undefined): Record<string, string> {
  const properties: Record<string, string> = {};
  if (!headers) return properties;
  for (const key of headers.keys()) properties[key] = headers.get(key);
  return properties;
}

/** A header value that NATS can carry: one line, cut to a reasonable length. */
export function headerValue(text: string): string {
  const line = text.replace(/[\r\n]+/g, ' ');
  return cutText(line, MAX_HEADER_VALUE - 1);
}
