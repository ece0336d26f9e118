/**
 * Two sessions of the store's own knex at once, for the probes that ask whether a lock one session holds
 * really excludes another. Both come from the user's pool (its `afterCreate`, `searchPath`, TLS), so
 * they resolve functions as the store's claims do; a pool of one connection lends the second session a
 * connection of its own, closed afterwards.
 */
import type { Knex } from 'knex';
import { CheckTimeoutError, within } from './check-step.js';

/** One session of a probe: its statements run on one connection, each bounded by the check's step. */
export interface ProbeSession {
  raw(sql: string, bindings?: readonly Knex.RawBinding[]): Promise<unknown>;
}

interface Lent {
  readonly connection: unknown;
  readonly own: boolean;
  /** A statement of it got no answer in time: the connection must not go back to the pool busy. */
  tainted: boolean;
}

export async function withTwoSessions<T>(
  knex: Knex,
  work: (first: ProbeSession, second: ProbeSession) => Promise<T>,
): Promise<T> {
  const first = await lend(knex, false);
  try {
    const max = (knex.client as { pool?: { max?: unknown } }).pool?.max;
    const second = await lend(knex, typeof max === 'number' && max < 2);
    try {
      return await work(session(knex, first), session(knex, second));
    } finally {
      await giveBack(knex, second);
    }
  } finally {
    await giveBack(knex, first);
  }
}

async function lend(knex: Knex, own: boolean): Promise<Lent> {
  const client = knex.client as Knex.Client & {
    acquireRawConnection(): Promise<unknown>;
    destroyRawConnection(connection: unknown): Promise<void>;
  };
  const connection = own
    ? await within('a second connection for the probe', client.acquireRawConnection(), (late) =>
        client.destroyRawConnection(late).catch(() => {}),
      )
    : await within("a connection from knex's pool", client.acquireConnection(), (late) =>
        client.releaseConnection(late),
      );
  return { connection, own, tainted: false };
}

function session(knex: Knex, lent: Lent): ProbeSession {
  return {
    raw: async (sql, bindings = []) => {
      try {
        return await within(sql, knex.raw(sql, bindings as Knex.RawBinding[]).connection(lent.connection));
      } catch (error) {
        if (error instanceof CheckTimeoutError) lent.tainted = true;
        throw error;
      }
    },
  };
}

async function giveBack(knex: Knex, lent: Lent): Promise<void> {
  const client = knex.client as Knex.Client & { destroyRawConnection(connection: unknown): Promise<void> };
  if (lent.own) {
    await client.destroyRawConnection(lent.connection).catch(() => {});
    return;
  }
  // knex's pool destroys a connection marked disposed instead of lending it again.
  if (lent.tainted) {
    (lent.connection as { __knex__disposed?: unknown }).__knex__disposed =
      'a statement of the readiness probe got no answer in time';
  }
  await client.releaseConnection(lent.connection);
}
