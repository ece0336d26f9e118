/** @idempotent-mq/rabbitmq/testing: test doubles for the RabbitMQ transport. */
import { kill, type RabbitMQTransport } from '../rabbitmq-transport.js';

/**
 * The consumer dies on the spot, as a process killed with SIGKILL: its sockets are destroyed without an
 * AMQP close, nothing more is acked or published (the handlers in flight run on, unheard), and it never
 * reconnects. RabbitMQ gives back every unacknowledged delivery at once, `redelivered: true`. A
 * transport on a recovering connection you gave it cannot be killed this way (it would reconnect).
 */
export async function killTransport(transport: RabbitMQTransport): Promise<void> {
  transport[kill]();
}
