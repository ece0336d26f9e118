import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const main = fileURLToPath(new URL('../../examples/payment/dist/main.js', import.meta.url));
const run = (args: string[]) =>
  promisify(execFile)(process.execPath, [main, ...args], {
    timeout: 60_000,
    env: { ...process.env, DATABASE_URL: '', REDIS_URL: '' },
  }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({
      code: error.code,
      stdout: error.stdout,
      stderr: error.stderr,
    }),
  );

describe('the payment demo (pnpm demo)', () => {
  it('runs on its embedded defaults and ends with the two report lines a script reads', async () => {
    expect(existsSync(main), 'build first: pnpm build').toBe(true);
    const { code, stdout } = await run(['--payments', '300', '--seed', '3']);
    expect(code).toBe(0);
    expect(stdout).toContain('storage: SQLite store');
    expect(stdout.trim().split('\n').slice(-2)).toEqual(['double charges: 0', 'lost payments: 0']);
  });

  it('--help describes every option; a bad option value fails with its name and exit code 2', async () => {
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    for (const option of [
      '--payments',
      '--consumers',
      '--seed',
      '--resend',
      '--lost-ack',
      '--rebalance',
      '--crash',
      '--handler-crash',
      '--store',
      '--transport',
    ]) {
      expect(help.stdout).toContain(option);
    }
    const bad = await run(['--lost-ack', '2']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--lost-ack must be a number from 0 to 1');
  });

  it('--help names every transport, the servers they use, and what each fault means on them', async () => {
    const { stdout } = await run(['--help']);
    expect(stdout).toContain('--transport KIND    memory | rocketmq | rabbitmq | nats');
    for (const text of ['AMQP_URL', 'NATS_URL', 'ROCKETMQ_ENDPOINTS', 'Nats-Msg-Id', 'SIGKILL', 'ack_wait']) {
      expect(stdout).toContain(text);
    }
  });

  it('a --transport it does not know fails with the ones it does, exit code 2, before any connection', async () => {
    const bad = await run(['--transport', 'kafka']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toBe(
      '--transport must be one of memory, rocketmq, rabbitmq, nats; got "kafka"',
    );
  });

  it('--transport rabbitmq runs over the RabbitMQ server and ends with the two report lines', async () => {
    const { code, stdout } = await run(['--transport', 'rabbitmq', '--payments', '100', '--store', 'memory']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^broker: RabbitMQ at amqps?:\/\/\S+ \(exchange payments-/m);
    expect(stdout).toMatch(/^faults: resends \(a second publish\) \d+, consumers killed, acks lost \d+/m);
    expect(stdout.trim().split('\n').slice(-2)).toEqual(['double charges: 0', 'lost payments: 0']);
  });
});
