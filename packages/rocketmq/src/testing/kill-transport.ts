/** A consumer that dies on the spot, for tests of what a crash loses (nothing) and what comes back. */
import { kill, type RocketMQTransport } from '../rocketmq-transport.js';

/**
 * Kills `transport` as SIGKILL would kill its process: it receives, renews and settles nothing more,
 * the handlers it was running are abandoned (whatever they answer later is dropped), and the proxy gets
 * no termination notice. Each message it held comes back to another consumer of its group once its
 * invisible time runs out, with `deliveryAttempt + 1`. Resolves once its clients are closed.
 */
export function killTransport(transport: RocketMQTransport): Promise<void> {
  return transport[kill]();
}
