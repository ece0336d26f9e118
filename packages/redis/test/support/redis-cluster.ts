/**
 * A 3-master Redis Cluster on spare loopback ports, for the contract suites: started with
 * `redis-server --cluster-enabled yes` and `redis-cli --cluster create`, stopped by PID.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Cluster } from 'ioredis';
import { ask, RedisServer, sleep } from './redis-server.js';

const run = promisify(execFile);

export class RedisTestCluster {
  private constructor(readonly nodes: readonly RedisServer[]) {}

  static async start(size = 3): Promise<RedisTestCluster> {
    const nodes: RedisServer[] = [];
    try {
      for (let i = 0; i < size; i++) nodes.push(await RedisServer.start({ cluster: true }));
      const cluster = new RedisTestCluster(nodes);
      await run('redis-cli', [
        '--cluster',
        'create',
        ...nodes.map((n) => `127.0.0.1:${n.port}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ]);
      await cluster.waitUntilOk();
      return cluster;
    } catch (error) {
      await Promise.all(nodes.map((n) => n.stop()));
      throw error;
    }
  }

  /** An ioredis Cluster client on these nodes; the caller quits it. */
  client(): Cluster {
    return new Cluster(
      this.nodes.map((n) => ({ host: '127.0.0.1', port: n.port })),
      { clusterRetryStrategy: (times) => Math.min(times * 100, 1000) },
    );
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()));
  }

  private async waitUntilOk(): Promise<void> {
    const started = Date.now();
    while (Date.now() - started < 15_000) {
      const states = await Promise.all(this.nodes.map((n) => ask(n.port, 'CLUSTER INFO')));
      if (states.every((s) => s?.includes('cluster_state:ok'))) return;
      await sleep(100);
    }
    throw new Error('the test cluster did not reach cluster_state:ok');
  }
}
