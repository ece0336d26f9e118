/**
 * Shutdown: once the transports, the publisher and the test broker are closed, nothing of theirs keeps
 * the process alive. Regression: a closed client's telemetry stream kept renewing itself for ever (the
 * stream guard forwarded `removeAllListeners(undefined)`, which removes nothing), piling error listeners
 * on its streams (MaxListenersExceededWarning) until the heap ran out. (The broker's own `close()` is
 * tested in @idempotent-mq/rocketmq-testing.)
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const child = fileURLToPath(new URL('./support/lifecycle-child.mjs', import.meta.url));
const built = [
  fileURLToPath(new URL('../dist/testing/index.js', import.meta.url)),
  fileURLToPath(new URL('../../rocketmq-testing/dist/index.js', import.meta.url)),
];

interface ChildRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** ms from the child's `done` line (everything closed) to its exit. */
  exitAfterDoneMs: number | undefined;
  killed: boolean;
}

/** Runs the child; kills it (only it, by its pid) if it has not exited by itself within `timeoutMs`. */
function runChild(timeoutMs: number): Promise<ChildRun> {
  const home = mkdtempSync(join(tmpdir(), 'imq-rocketmq-lifecycle-'));
  return new Promise<ChildRun>((resolve, reject) => {
    const proc = spawn(process.execPath, [child], {
      env: { ...process.env, HOME: home },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let doneAt: number | undefined;
    let killed = false;
    proc.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk;
      if (doneAt === undefined && /^done \d+$/m.test(stdout)) doneAt = Date.now();
    });
    proc.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => {
      killed = true;
      proc.kill('SIGKILL');
    }, timeoutMs);
    proc.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      rmSync(home, { recursive: true, force: true });
      resolve({
        code,
        signal,
        stdout,
        stderr,
        exitAfterDoneMs: doneAt === undefined ? undefined : Date.now() - doneAt,
        killed,
      });
    });
  });
}

describe('shutdown', () => {
  it('a process that used the broker, a publisher and transports across a restart exits by itself once they are closed', async () => {
    for (const file of built)
      expect(existsSync(file), 'build first: npx tsc -b tsconfig.build.json').toBe(true);
    const run = await runChild(25_000);
    expect(run.stderr).not.toMatch(/MaxListenersExceededWarning/);
    expect(run.stdout, run.stderr).toMatch(/^done \d+$/m);
    expect(run.killed, 'the child was still alive after everything was closed').toBe(false);
    expect(run.code, run.stderr).toBe(0);
    // A telemetry renewal the client had already scheduled may still fire (within 1 s), and opens nothing.
    expect(run.exitAfterDoneMs).toBeLessThan(3000);
  }, 30_000);
});
