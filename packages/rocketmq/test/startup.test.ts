/** Start-up: the client waits forever for settings; the transport and the publisher do not. */
import { createServer, type Server, type Socket } from 'node:net';
import { RocketMQPublisher, RocketMQStartupError, RocketMQTransport } from '@idempotent-mq/rocketmq';
import { RocketMQTestBroker } from '@idempotent-mq/rocketmq-testing';
import { afterAll, describe, expect, it } from 'vitest';
import { RecordingLogger, recordingSpec, useTempHome } from './support.js';

const restoreHome = useTempHome();
afterAll(() => restoreHome());

describe('start-up', () => {
  it('fails with a clear error, in time, against a gRPC server that never sends its settings', async () => {
    const silent = await RocketMQTestBroker.start({ silentTelemetry: true });
    try {
      const transport = new RocketMQTransport({
        endpoints: silent.endpoints,
        logger: new RecordingLogger(),
        startupTimeoutMs: 1000,
        requestTimeout: 1000,
      });
      const started = Date.now();
      const error = await transport
        .subscribe(recordingSpec({ topic: 'orders', consumerGroup: 'g-silent' }))
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(Date.now() - started).toBeLessThan(3000);
      expect(error).toBeInstanceOf(RocketMQStartupError);
      expect(error).toMatchObject({
        code: 'STARTUP_FAILED',
        timedOut: true,
        timeoutMs: 1000,
        endpoints: silent.endpoints,
      });
      expect(String((error as Error).message)).toMatch(
        /did not start within 1000 ms: .* never answered with its client settings.*startupTimeoutMs/,
      );
      // The client did reach the server: it is the settings that never came.
      expect(silent.clients().some((c) => c.group === 'g-silent')).toBe(true);
      await transport.stop();
    } finally {
      await silent.close();
    }
  });

  it('fails in time against a TCP port that accepts and never answers', async () => {
    const sockets = new Set<Socket>();
    const server: Server = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const publisher = new RocketMQPublisher({
        endpoints: `127.0.0.1:${port}`,
        topics: ['orders'],
        logger: new RecordingLogger(),
        startupTimeoutMs: 1500,
        requestTimeout: 1000,
      });
      const started = Date.now();
      await expect(publisher.start()).rejects.toBeInstanceOf(RocketMQStartupError);
      expect(Date.now() - started).toBeLessThan(4000);
      await expect(publisher.send({ topic: 'orders', keys: ['K'], body: {} })).rejects.toThrow(/not running/);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((r) => server.close(r));
    }
  });

  it('fails in time when nothing listens on the port', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
    const transport = new RocketMQTransport({
      endpoints: `127.0.0.1:${port}`,
      logger: new RecordingLogger(),
      startupTimeoutMs: 1500,
      requestTimeout: 1000,
    });
    await expect(
      transport.subscribe(recordingSpec({ topic: 'orders', consumerGroup: 'g-none' })),
    ).rejects.toThrow(RocketMQStartupError);
    await transport.stop();
  });
});
