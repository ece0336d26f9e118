/** @idempotent-mq/nats: placeholder until the transport lands. */
export {};
