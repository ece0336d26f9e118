/** The CLI's exit codes, and the one error type a command throws to end with one of them. */

/**
 * What each exit code means. Scripts may match on them; the README's table is this one.
 * - `ok` (0): done.
 * - `failure` (1): something failed while talking to the store, the cache or a dead-letter source
 *   (unreachable, a missing table, an error it answered); what was done before is reported.
 * - `usage` (2): bad usage or configuration, nothing was attempted: an unknown command or option, a
 *   missing argument, a config file that cannot be read, a store without the port method a command needs.
 * - `notFound` (3): `inspect` / `forget`: neither the store nor the cache holds the token; `dlq redrive
 *   --id`: no dead letter has that id.
 * - `refused` (4): `forget` of a live in-progress claim without `--force`: nothing was deleted.
 */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  notFound: 3,
  refused: 4,
} as const;

/** One of {@link ExitCode}'s values. */
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** The kinds of failure a JSON error document names (`error.code`). */
export type CliErrorCode =
  | 'USAGE'
  | 'CONFIG'
  | 'UNSUPPORTED'
  | 'UNREACHABLE'
  | 'NOT_FOUND'
  | 'REFUSED'
  | 'FAILED';

const EXIT_OF: Record<CliErrorCode, ExitCodeValue> = {
  USAGE: ExitCode.usage,
  CONFIG: ExitCode.usage,
  UNSUPPORTED: ExitCode.usage,
  UNREACHABLE: ExitCode.failure,
  NOT_FOUND: ExitCode.notFound,
  REFUSED: ExitCode.refused,
  FAILED: ExitCode.failure,
};

/**
 * A failure the CLI explains: `message` says what happened and what to do about it. The exit code
 * follows from `code`.
 */
export class CliError extends Error {
  override readonly name = 'CliError';
  /** The process exit code this error ends with. */
  readonly exitCode: ExitCodeValue;

  constructor(
    /** What kind of failure it is (the JSON document's `error.code`). */
    readonly code: CliErrorCode,
    message: string,
    options?: { readonly cause?: unknown },
  ) {
    super(message, options);
    this.exitCode = EXIT_OF[code];
  }
}
