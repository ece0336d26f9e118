/** @idempotent-mq/cli: placeholder until the commands land. */
export {};
