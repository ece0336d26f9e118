/**
 * The broker's lifecycle: an outage keeps the port and the state, and a close leaves no server,
 * connection or port behind. What it serves is tested through the real client in packages/rocketmq/test
 * (`broker.test.ts`, and every transport test): the bare rocketmq-client-nodejs 1.0.8, stopped here
 * without the transport around it, left a renewed telemetry stream that failed CANCELLED after shutdown.
 */
import { connect } from 'node:net';
import { RocketMQTestBroker } from '@idempotent-mq/rocketmq-testing';
import { describe, expect, it } from 'vitest';

const http2Servers = () =>
  (process as unknown as { _getActiveHandles(): object[] })
    ._getActiveHandles()
    .filter((h) => h.constructor.name === 'Http2Server').length;

function refused(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe('RocketMQTestBroker', () => {
  it('an outage closes the port and keeps the state; it comes back on the same port', async () => {
    const broker = await RocketMQTestBroker.start();
    try {
      const { port } = broker;
      const stored = broker.inject('t', { body: 'x', keys: ['K-1'] });
      await broker.stopServing();
      expect(broker.serving).toBe(false);
      expect(await refused(port)).toBe(true);
      await broker.resumeServing();
      expect(broker.serving).toBe(true);
      expect(broker.port).toBe(port);
      expect(broker.endpoints).toBe(`127.0.0.1:${port}`);
      expect(await refused(port)).toBe(false);
      expect(broker.messages('t')).toEqual([stored]);
      expect(broker.stateOf('g', stored.messageId)).toBe('ready');
    } finally {
      await broker.close();
    }
  });

  it('close() releases its port and HTTP/2 server before it resolves, even mid-restart', async () => {
    const before = http2Servers();
    const broker = await RocketMQTestBroker.start();
    expect(http2Servers()).toBe(before + 1);
    const restarting = broker.restart(200);
    await broker.close();
    await restarting;
    expect(broker.serving).toBe(false);
    expect(http2Servers()).toBe(before);
    expect(await refused(broker.port)).toBe(true);
    await broker.resumeServing(); // not after close()
    expect(broker.serving).toBe(false);
  });
});
