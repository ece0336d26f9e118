#!/usr/bin/env node
/** The `idempotent-mq` executable: {@link run} on the process's arguments and streams. */
import { run } from './run.js';

process.exitCode = await run(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr });
