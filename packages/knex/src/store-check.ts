/**
 * The SQL store's start-up check, in the order a claim depends on things: the database answers, the
 * token table is there and of the shape the store writes, and (when some handler runs in transactional
 * mode) the server's primitives behave as the claim's SQL assumes — probed on the server, not read off
 * its version. Every step is bounded; nothing here throws for a failed check.
 */
import type { ReadinessCheck, ReadinessRequest } from '@idempotent-mq/core/adapter';
import type { Knex } from 'knex';
import { CheckTimeoutError, errorText, within } from './check-step.js';
import { isConnectionFailure } from './connection-failure.js';
import type { Dialect } from './dialects/dialect.js';
import type { ResolvedTableOptions } from './table-options.js';
import { readTableShape, tableChecks } from './table-shape.js';

const REACH_FIX =
  'Is DATABASE_URL (the knex connection) right, and is the database server up and reachable from here?';
const OPEN_FIX = "Is the SQLite file's path right (its directory must exist), and may this process open it?";

export async function checkKnexStore(
  knex: Knex,
  dialect: Dialect,
  table: ResolvedTableOptions,
  request: ReadinessRequest,
): Promise<ReadinessCheck[]> {
  const reach = await reachable(knex, dialect);
  if (reach.check.status !== 'ok') return [reach.check];
  const server = reach.server;
  const checks: ReadinessCheck[] = [reach.check];
  try {
    checks.push(...tableChecks(dialect.name, table, await readTableShape(knex, dialect, table)));
  } catch (error) {
    checks.push(
      notChecked(
        `table "${table.tableName}"`,
        'its catalogue could not be read',
        error,
        "Let the store's database user read the catalogue (pg_catalog, information_schema) and the table.",
      ),
    );
  }
  if (!request.transactional) {
    checks.push({
      name: 'transactional primitives',
      status: 'ok',
      detail:
        'not probed: no handler runs in transactional mode (lease-mode claims commit at once and need only ' +
        'the table).',
    });
    return checks;
  }
  try {
    checks.push(...(await dialect.checkPrimitives(knex, server)));
  } catch (error) {
    checks.push(
      notChecked(
        'transactional primitives',
        `${server} could not be probed`,
        error,
        "Run these handlers in lease mode (mode: 'lease' on @Idempotent) until the probe passes.",
      ),
    );
  }
  return checks;
}

/** One statement that also names the server: the first thing every other check needs. */
async function reachable(knex: Knex, dialect: Dialect): Promise<{ check: ReadinessCheck; server: string }> {
  const sql = `select ${dialect.versionSql} as version`;
  const started = performance.now();
  try {
    const [row] = dialect.rawRows(await within(`select ${dialect.versionSql}`, knex.raw(sql)));
    const server = serverName(dialect, String(row?.version ?? ''));
    const ms = Math.round(performance.now() - started);
    return { check: { name: 'reachable', status: 'ok', detail: `${server} answered in ${ms} ms.` }, server };
  } catch (error) {
    const detail =
      error instanceof CheckTimeoutError
        ? `the ${dialect.label} database did not answer within ${error.ms} ms.`
        : isConnectionFailure(error)
          ? `the ${dialect.label} database cannot be reached: ${errorText(error)}.`
          : `the first statement on the ${dialect.label} database failed: ${errorText(error)}.`;
    const fix = dialect.name === 'sqlite' ? OPEN_FIX : REACH_FIX;
    return { check: { name: 'reachable', status: 'failed', detail, fix }, server: dialect.label };
  }
}

/** A step that could not run to its end: an outage met midway, or a statement the server refused. */
function notChecked(name: string, what: string, error: unknown, fix: string): ReadinessCheck {
  const outage = error instanceof CheckTimeoutError || isConnectionFailure(error);
  return { name, status: 'failed', detail: `${what}: ${errorText(error)}.`, fix: outage ? REACH_FIX : fix };
}

/**
 * The server as its own version text names it, without the build details: `PostgreSQL 15.20`,
 * `CockroachDB CCL v23.1.11`, `MariaDB 10.11.19`, `TiDB v7.5.0 (MySQL 8.0.11)`, `MySQL 8.0.36`,
 * `SQLite 3.45.1`.
 */
function serverName(dialect: Dialect, version: string): string {
  const short = version.split(/ \(|, | on /)[0]?.trim() ?? '';
  if (short === '') return dialect.label;
  if (dialect.name !== 'mysql') return short;
  const mariadb = /^(\d+\.\d+\.\d+)-mariadb/i.exec(short);
  if (mariadb) return `MariaDB ${mariadb[1]}`;
  const tidb = /^([\d.]+)-TiDB-(v[\w.-]+)/i.exec(short);
  if (tidb) return `TiDB ${tidb[2]} (MySQL ${tidb[1]})`;
  return /^\d/.test(short) ? `MySQL ${short}` : short;
}
