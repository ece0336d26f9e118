/** @idempotent-mq/rabbitmq: placeholder until the transport lands. */
export {};
