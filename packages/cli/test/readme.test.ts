/** The README shows the real `--help` of every command, and the exit codes and environment the code has. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ENVIRONMENT, EXIT_CODE_HELP, ExitCode } from '../src/index.js';
import { cli } from './support/cli.js';

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

describe('the README', () => {
  const commands = ['', 'migrate', 'inspect', 'forget', 'purge', 'stats', 'dlq', 'dlq list', 'dlq redrive'];
  it.each(commands)('shows the help of "%s" as the CLI prints it', async (command) => {
    const argv = [...(command ? command.split(' ') : []), '--help'];
    const run = await cli(argv);
    expect(run.code).toBe(0);
    expect(README).toContain(`$ idempotent-mq ${argv.join(' ')}\n${run.stdout}`);
  });

  it('lists every exit code with the meaning the code gives it', () => {
    expect(EXIT_CODE_HELP.map(([code]) => code)).toEqual(Object.values(ExitCode));
    for (const code of Object.values(ExitCode)) expect(README).toMatch(new RegExp(`^\\| ${code} +\\| `, 'm'));
  });

  it('lists every environment variable the CLI reads', () => {
    for (const name of Object.keys(ENVIRONMENT))
      expect(README).toMatch(new RegExp(`^\\| \`${name}\` +\\|`, 'm'));
  });
});
