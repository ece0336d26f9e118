/** The body codecs, core's: one set for every transport. */
export {
  BODY_CODECS,
  type BodyCodec,
  type DecodeResult,
  decodeBody,
  encodeBody,
} from '@idempotent-mq/core/adapter';
