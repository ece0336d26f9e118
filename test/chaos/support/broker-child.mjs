/**
 * The broker of the chaos test in a process of its own, run from the build, so that consumers can be
 * killed while it lives: the RocketMQ gRPC test broker on a free port of 127.0.0.1. It prints
 * `{"endpoints": "127.0.0.1:<port>"}` once serving, then answers one JSON request per stdin line with one
 * JSON line: `{"id", "cmd": "progress", "group", "topic"}` → how many of the topic's messages the group
 * has acked or lost to the dead-letter queue, and the dead letters themselves. It closes the broker and
 * exits when stdin ends (the test went away).
 */
import { createInterface } from 'node:readline';
import { RocketMQTestBroker } from '../../../packages/rocketmq-testing/dist/index.js';

const broker = await RocketMQTestBroker.start();

function progress({ group, topic }) {
  const messages = broker.messages(topic);
  const acked = new Set(broker.acked(group));
  const deadLetters = broker.deadLetters(group).filter((d) => d.message.topic === topic);
  const dead = new Set(deadLetters.map((d) => d.message.messageId));
  return {
    messages: messages.length,
    settled: messages.filter((m) => acked.has(m.messageId) || dead.has(m.messageId)).length,
    deliveries: broker.deliveries({ group }).length,
    deadLetters: deadLetters.map((d) => ({
      keys: d.message.keys,
      deliveryAttempt: d.deliveryAttempt,
      cause: d.cause,
    })),
  };
}

const commands = { progress };

createInterface({ input: process.stdin })
  .on('line', (line) => {
    const request = JSON.parse(line);
    try {
      const result = commands[request.cmd](request);
      process.stdout.write(`${JSON.stringify({ id: request.id, result })}\n`);
    } catch (error) {
      process.stdout.write(`${JSON.stringify({ id: request.id, error: String(error) })}\n`);
    }
  })
  .on('close', async () => {
    await broker.close();
    process.exit(0);
  });

process.stdout.write(`${JSON.stringify({ endpoints: broker.endpoints })}\n`);
