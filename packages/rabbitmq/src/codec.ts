/** The body codecs, core's (one set for every transport), and the AMQP `content-type` each writes. */
import type { BodyCodec } from '@idempotent-mq/core/adapter';

export {
  BODY_CODECS,
  type BodyCodec,
  type DecodeResult,
  decodeBody,
  encodeBody,
} from '@idempotent-mq/core/adapter';

/** The AMQP `content-type` each codec writes. */
export const CONTENT_TYPES: Readonly<Record<BodyCodec, string>> = {
  json: 'application/json',
  utf8: 'text/plain; charset=utf-8',
  buffer: 'application/octet-stream',
};
