import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const main = fileURLToPath(new URL('../../examples/quickstart/dist/main.js', import.meta.url));

describe('the README quickstart (pnpm demo)', () => {
  it('runs from its build, charges each payment once, and ends with the two report lines', async () => {
    expect(existsSync(main), 'build first: pnpm build').toBe(true);
    const { stdout } = await promisify(execFile)(process.execPath, [main], { timeout: 30_000 });
    const lines = stdout.trim().split('\n');
    expect(lines.slice(-2)).toEqual(['double charges: 0', 'lost payments: 0']);
    expect(stdout).toContain('(exact)');
    expect(stdout).toMatch(/failed and redelivered: 2/);
  });
});
