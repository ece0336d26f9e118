/**
 * A private RabbitMQ node for the tests that stop the broker or change its settings: started from the
 * installed 3.10 scripts as a child process, on free loopback ports, with its own node name, data, logs,
 * cookie and configuration (no plugins), so the shared server on 5672 is never touched. Stopped by the
 * PIDs it started: the script's (SIGTERM stops the node gracefully), and the VM's from its pid file if
 * that did not end it.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'amqplib';

const SCRIPTS = process.env.RABBITMQ_SCRIPTS ?? '/usr/lib/rabbitmq/bin';

export class PrivateRabbitMQ {
  #child: ChildProcess | undefined;
  #output = '';

  private constructor(
    readonly dir: string,
    readonly nodeName: string,
    readonly port: number,
    private readonly distPort: number,
  ) {}

  /** `amqp://guest:guest@127.0.0.1:<port>` (guest may log in over loopback). */
  get url(): string {
    return `amqp://guest:guest@127.0.0.1:${this.port}`;
  }

  /** Starts a node; `channel_tick_interval` set short so that a `consumer_timeout` is enforced promptly. */
  static async start(): Promise<PrivateRabbitMQ> {
    const server = join(SCRIPTS, 'rabbitmq-server');
    if (!existsSync(server)) {
      throw new Error(
        `no RabbitMQ scripts at ${SCRIPTS} (set RABBITMQ_SCRIPTS): cannot start a private node`,
      );
    }
    const dir = mkdtempSync(join(tmpdir(), 'imq-rabbitmq-'));
    const node = new PrivateRabbitMQ(
      dir,
      `imq-test-${process.pid}-${randomUUID().slice(0, 6)}@localhost`,
      await freePort(),
      await freePort(),
    );
    mkdirSync(join(dir, 'home'));
    writeFileSync(join(dir, 'rabbitmq-env.conf'), '');
    writeFileSync(join(dir, 'rabbitmq.conf'), `listeners.tcp.local = 127.0.0.1:${node.port}\n`);
    writeFileSync(join(dir, 'advanced.config'), '[{rabbit, [{channel_tick_interval, 200}]}].\n');
    writeFileSync(join(dir, 'enabled_plugins'), '[].\n');
    await node.boot();
    return node;
  }

  /** Stops the node gracefully (as `systemctl restart` would) and starts it again on the same data. */
  async restart(): Promise<void> {
    await this.stop();
    await this.boot();
  }

  /** Runs `rabbitmqctl` against this node (its own cookie and name). */
  ctl(...args: string[]): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(
        join(SCRIPTS, 'rabbitmqctl'),
        ['-n', this.nodeName, ...args],
        { env: this.#env(), timeout: 30_000 },
        (error, stdout, stderr) =>
          error
            ? reject(new Error(`rabbitmqctl ${args.join(' ')}: ${stderr || error.message}`))
            : resolve(stdout),
      );
    });
  }

  /** Sets a `rabbit` application setting at run time (channels opened afterwards read it). */
  async setEnv(key: string, value: string): Promise<void> {
    await this.ctl('eval', `application:set_env(rabbit, ${key}, ${value}).`);
  }

  /** Stops the node: SIGTERM to the script we started, then SIGKILL to it and its VM if they linger. */
  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (!child || child.exitCode !== null || child.pid === undefined) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    process.kill(child.pid, 'SIGTERM');
    const stopped = await Promise.race([exited.then(() => true), sleep(20_000).then(() => false)]);
    if (!stopped) {
      const vm = this.#vmPid();
      if (vm !== undefined) killQuietly(vm);
      killQuietly(child.pid);
      await exited;
    }
  }

  /** Stops the node and deletes its files. */
  async remove(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The log of this run, for a failure message. */
  get output(): string {
    return this.#output.slice(-4000);
  }

  async boot(timeoutMs = 60_000): Promise<void> {
    const child = spawn(join(SCRIPTS, 'rabbitmq-server'), [], {
      env: this.#env(),
      cwd: this.dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#child = child;
    this.#output = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      this.#output += chunk.toString();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      this.#output += chunk.toString();
    });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (child.exitCode !== null) {
        throw new Error(
          `the private RabbitMQ node exited (${child.exitCode}) while starting:\n${this.output}`,
        );
      }
      try {
        const connection = await connect(this.url, { timeout: 1000 });
        await connection.close();
        return;
      } catch {
        if (Date.now() > deadline) {
          await this.stop();
          throw new Error(
            `the private RabbitMQ node did not accept connections within ${timeoutMs} ms:\n${this.output}`,
          );
        }
        await sleep(200);
      }
    }
  }

  #env(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env))
      if (!k.startsWith('RABBITMQ_') && !k.startsWith('ERL_')) env[k] = v;
    const dir = this.dir;
    return {
      ...env,
      HOME: join(dir, 'home'),
      RABBITMQ_CONF_ENV_FILE: join(dir, 'rabbitmq-env.conf'),
      RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
      RABBITMQ_ADVANCED_CONFIG_FILE: join(dir, 'advanced.config'),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
      RABBITMQ_NODENAME: this.nodeName,
      RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
      RABBITMQ_LOG_BASE: join(dir, 'log'),
      RABBITMQ_PID_FILE: join(dir, 'node.pid'),
      RABBITMQ_DIST_PORT: String(this.distPort),
      ERL_EPMD_ADDRESS: '127.0.0.1',
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
    };
  }

  #vmPid(): number | undefined {
    try {
      const pid = Number(readFileSync(join(this.dir, 'node.pid'), 'utf8').trim());
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
