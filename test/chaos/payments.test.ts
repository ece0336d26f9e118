/**
 * Payments under process-level chaos, the way production fails: three consumer processes (each a
 * ListenerRegistry over a RocketMQTransport, the real client) are SIGKILLed, or SIGSTOPped for a few
 * seconds and then SIGKILLed, at random, while the broker (the gRPC test broker, in a process of its own)
 * outlives them. Each consumer appends every payment to a PostgreSQL ledger that has no unique index on
 * the serial, so a double charge shows. Judged only by the ledger and the broker: every serial exactly
 * once, and nothing in the dead-letter queue.
 *
 * The timings are short on purpose (leases of 3 s, messages invisible for 1 s, 3 attempts, in-flight
 * copies looked at again after 200 ms), so that a copy meeting a dead owner's claim arrives while that
 * claim's lease is still live (lease mode), or while a frozen owner's transaction is still open
 * (transactional mode): a wait for it must not spend the message's attempts.
 *
 * No double charge is allowed in any mode. Lease mode charges outside the store, so one window is left
 * to the handler: the charge has committed, the claim's completion has not, and the process dies. The
 * copy that takes the claim over is told so (`ctx.replay`), and the consumer does what the README asks of
 * lease-mode handlers: on a replay, it charges only if the payment is not already in the ledger. The
 * summary counts those replays that found the charge made ("already charged"): the crash window, hit
 * and closed. Transactional mode commits the charge with the completion.
 *
 * A failure prints its seed; replay the chaos schedule with `CHAOS_SEED=<seed>`. The children run the
 * build: `npx tsc -b tsconfig.build.json` first (`pnpm test` does).
 */
import { randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createIdempotencyTable } from '@idempotent-mq/knex';
import { RocketMQPublisher } from '@idempotent-mq/rocketmq';
import { Redis } from 'ioredis';
import knexFactory, { type Knex } from 'knex';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BrokerProcess,
  type BrokerProgress,
  type ConsumerConfig,
  type ConsumerEvent,
  ConsumerProcess,
  endAll,
} from './support/children.js';
import { seededRandom } from './support/random.js';

const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const SEED = process.env.CHAOS_SEED ? Number(process.env.CHAOS_SEED) : randomInt(2 ** 31);

const PAYMENTS = 2000;
const CONSUMERS = 3;
/** How long the payments take to arrive. */
const PUBLISH_MS = 10_000;
/** How long the kills and freezes go on (less if every payment is settled sooner). */
const CHAOS_MS = 12_000;
/** After the chaos, how long the survivors have to settle what is left. */
const DRAIN_MS = 20_000;
const LEASE_MS = 3000;
/**
 * The longest a consumer may live on after saying it charged a payment, before it says how the run
 * ended, for its stop to count as having cut the run off (the completion is one store call away).
 */
const CRASH_WINDOW_SLACK_MS = 1000;

interface Configuration {
  readonly name: string;
  readonly store: ConsumerConfig['store'];
  readonly mode: ConsumerConfig['mode'];
  /** What the test proves, as its name. */
  readonly promise: string;
}

const LEASE_PROMISE =
  'charges every payment exactly once and dead-letters none: a copy that takes over a dead owner waits ' +
  'for its lease, and its replay finds a charge the owner made before dying';
const configurations: Configuration[] = [
  {
    name: 'KnexIdempotencyStore on PostgreSQL, lease mode',
    store: 'knex',
    mode: 'lease',
    promise: LEASE_PROMISE,
  },
  {
    name: 'KnexIdempotencyStore on PostgreSQL, transactional mode',
    store: 'knex',
    mode: 'transactional',
    promise: 'charges every payment exactly once and dead-letters none, frozen transactions included',
  },
  {
    name: 'RedisIdempotencyStore, lease mode (ledger on PostgreSQL)',
    store: 'redis',
    mode: 'lease',
    promise: LEASE_PROMISE,
  },
];

const quiet = { info() {}, warn() {}, error() {}, debug() {} };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const serialOf = (i: number) => `PAY-${String(i).padStart(6, '0')}`;

let home: string;
let previousHome: string | undefined;
let broker: BrokerProcess;
let knex: Knex;
let redis: Redis;

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'imq-chaos-'));
  // The RocketMQ client of the publisher (in this process) logs under $HOME too.
  previousHome = process.env.HOME;
  process.env.HOME = home;
  // A missing server fails here: under CI nothing is skipped.
  knex = knexFactory({ client: 'pg', connection: PG_URL, pool: { min: 0, max: 4 } });
  await knex.raw('select 1');
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  await redis.ping();
  broker = await BrokerProcess.start(home);
});

afterAll(async () => {
  await endAll();
  await broker?.close();
  await knex?.destroy();
  redis?.disconnect();
  process.env.HOME = previousHome;
  rmSync(home, { recursive: true, force: true });
});

/** Who charged a payment, and whether the test's stop cut that run off. */
interface Writer {
  readonly pid: number;
  readonly cutOff: boolean;
  readonly note: string;
}

/** What one run saw, for the verdict and the summary line. */
interface ChaosRun {
  readonly seed: number;
  readonly kills: number;
  readonly freezes: number;
  readonly handlerRuns: number;
  /** Replays (lease mode) that found the payment charged by a copy that died before completing. */
  readonly alreadyCharged: number;
  readonly outcomes: ReadonlyMap<string, number>;
  readonly lost: readonly string[];
  readonly doubled: readonly { serial: string; writers: Writer[]; inCrashWindow: boolean }[];
  readonly deadLetters: BrokerProgress['deadLetters'];
  /** Why the consumers dead-lettered what they did, by serial. */
  readonly deadReasons: ReadonlyMap<string, string>;
  /** Consumers that ended without being killed: pid, how, the end of their stderr. */
  readonly crashed: readonly string[];
  readonly unsettled: number;
  readonly durationMs: number;
}

async function runChaos(configuration: Configuration, index: number, seed: number): Promise<ChaosRun> {
  const started = Date.now();
  const id = `chaos_${process.pid}_${started.toString(36)}_${index}`;
  const topic = `${id}_payments`;
  const group = `${id}_billing`;
  const config: ConsumerConfig = {
    store: configuration.store,
    mode: configuration.mode,
    endpoints: broker.endpoints,
    topic,
    group,
    pgUrl: PG_URL,
    redisUrl: REDIS_URL,
    ledgerTable: `${id}_ledger`,
    tokenTable: `${id}_tokens`,
    keyPrefix: `${id}:`,
    leaseMs: LEASE_MS,
    concurrency: 8,
    maxAttempts: 3,
    inFlightDelayMs: 200,
    handlerMs: [5, 80],
  };
  // No unique index on the serial: the ledger itself stops nothing, so a second charge is a second row.
  await knex.schema.createTable(config.ledgerTable, (t) => {
    t.bigIncrements('id');
    t.string('serial', 32).notNullable();
    t.integer('amount').notNullable();
    t.integer('pid').notNullable();
  });
  if (configuration.store === 'knex') await createIdempotencyTable(knex, { tableName: config.tokenTable });

  let handlerRuns = 0;
  let alreadyCharged = 0;
  const outcomes = new Map<string, number>();
  /** `<pid> <serial>` → when that consumer said it charged the payment (its insert came back). */
  const chargedAt = new Map<string, number>();
  /** `<pid> <serial>` of every handler run that ended: processed or taken over (completed), or failed. */
  const ended = new Set<string>();
  const deadReasons = new Map<string, string>();
  const crashed: string[] = [];
  /**
   * pid → when the test stopped it (froze it, or killed it without a freeze). Every stopped process is
   * killed before the verdict; a process killed at teardown is not among them.
   */
  const stoppedAt = new Map<number, number>();
  const consumers: ConsumerProcess[] = [];
  let tearingDown = false;
  const onEvent = (pid: number, event: ConsumerEvent) => {
    if (event.type === 'run') handlerRuns++;
    else if (event.type === 'already') alreadyCharged++;
    else if (event.type === 'charged') chargedAt.set(`${pid} ${event.serial}`, Date.now());
    else if (event.type === 'outcome') {
      outcomes.set(event.kind, (outcomes.get(event.kind) ?? 0) + 1);
      if (['processed', 'takeover', 'failed'].includes(event.kind)) ended.add(`${pid} ${event.serial}`);
    } else if (event.type === 'dead') deadReasons.set(event.serial, event.reason);
    else if (event.type === 'exit' && !stoppedAt.has(pid) && !tearingDown) {
      const consumer = consumers.find((c) => c.pid === pid);
      crashed.push(`pid ${pid} exited (${event.code ?? event.signal}): ${consumer?.stderr().slice(-600)}`);
    }
  };
  const spawnConsumer = () => consumers.push(new ConsumerProcess(config, home, onEvent));
  const kill = (consumer: ConsumerProcess) => {
    if (!stoppedAt.has(consumer.pid)) stoppedAt.set(consumer.pid, Date.now());
    consumer.kill();
    spawnConsumer();
  };

  const publisher = new RocketMQPublisher({
    endpoints: broker.endpoints,
    topics: [topic],
    logger: quiet,
    requestTimeout: 1000,
  });
  try {
    for (let i = 0; i < CONSUMERS; i++) spawnConsumer();
    await publisher.start();
    // Payments arrive at a steady rate through the chaos, so that it always meets work in progress,
    // whatever the speed of the machine.
    const publishing = (async () => {
      const begin = Date.now();
      for (let i = 0; i < PAYMENTS; i++) {
        await sleep(begin + (i * PUBLISH_MS) / PAYMENTS - Date.now());
        await publisher.send({ topic, keys: [serialOf(i)], tag: 'PAY', body: { amount: 100 + (i % 900) } });
      }
    })();

    // The chaos: every 0.5–1.5 s a running consumer is killed, or frozen for 2–4 s and then killed;
    // a replacement starts as each is killed.
    const random = seededRandom(seed);
    let kills = 0;
    let freezes = 0;
    const thaws: Promise<void>[] = [];
    const settled = async () => {
      const progress = await broker.progress(group, topic);
      return progress.messages >= PAYMENTS && progress.settled === progress.messages;
    };
    const chaosEnds = Date.now() + CHAOS_MS;
    while (Date.now() < chaosEnds && !(await settled())) {
      // Every draw is made whatever happens next, so that a seed replays the same schedule.
      const pause = 500 + random() * 1000;
      const pick = random();
      const freeze = random() < 0.5;
      const frozenMs = 2000 + random() * 2000;
      await sleep(pause);
      const running = consumers.filter((c) => c.state === 'running');
      const victim = running[Math.floor(pick * running.length)];
      if (!victim) continue;
      // A kill starts a replacement at once; a freeze does not (nobody notices a frozen process), so
      // one consumer at least is left running or starting, or nothing would move until the thaws.
      const others = consumers.filter(
        (c) => c !== victim && (c.state === 'running' || c.state === 'starting'),
      );
      if (freeze && others.length === 0) continue;
      if (!freeze) {
        kills++;
        kill(victim);
        continue;
      }
      freezes++;
      stoppedAt.set(victim.pid, Date.now());
      victim.freeze();
      thaws.push(sleep(frozenMs).then(() => kill(victim)));
    }
    await Promise.all([publishing, ...thaws]);

    const drainEnds = Date.now() + DRAIN_MS;
    while (!(await settled()) && Date.now() < drainEnds) await sleep(250);
    const progress = await broker.progress(group, topic);

    // A charge was cut off by the test when its writer was stopped before the run ended, at most a
    // moment after the charge came back (or before: the insert was on its way).
    const writer = (pid: number, serial: string): Writer => {
      const stopped = stoppedAt.get(pid);
      const charged = chargedAt.get(`${pid} ${serial}`);
      const runEnded = ended.has(`${pid} ${serial}`);
      const gap = stopped !== undefined && charged !== undefined ? stopped - charged : undefined;
      return {
        pid,
        cutOff: stopped !== undefined && !runEnded && (gap === undefined || gap <= CRASH_WINDOW_SLACK_MS),
        note:
          stopped === undefined
            ? 'never stopped'
            : `stopped ${gap === undefined ? 'before its insert came back' : `${gap} ms after its charge`}, ` +
              `its run ${runEnded ? 'had ended' : 'never ended'}`,
      };
    };
    const { lost, doubled } = await judgeLedger(config.ledgerTable, writer);
    return {
      seed,
      kills,
      freezes,
      handlerRuns,
      alreadyCharged,
      outcomes,
      lost,
      doubled,
      deadLetters: progress.deadLetters,
      deadReasons,
      crashed,
      unsettled: progress.messages - progress.settled,
      durationMs: Date.now() - started,
    };
  } finally {
    tearingDown = true;
    for (const consumer of consumers) consumer.kill();
    await Promise.all(consumers.map((c) => c.exited));
    await publisher.stop().catch(() => undefined);
    await knex.schema.dropTableIfExists(config.ledgerTable);
    await knex.schema.dropTableIfExists(config.tokenTable);
    for await (const keys of redis.scanStream({ match: `${config.keyPrefix}*`, count: 1000 })) {
      if ((keys as string[]).length > 0) await redis.unlink(...(keys as string[]));
    }
  }
}

/**
 * Reads the ledger: the payments never charged, and those charged more than once. A double charge is
 * `inCrashWindow` when every charge but one was cut off by the test stopping its writer (`writer` says):
 * the charge committed, the claim's completion never did, and the payment ran again once the lease had
 * run out. No lease can prevent that one.
 */
async function judgeLedger(
  table: string,
  writer: (pid: number, serial: string) => Writer,
): Promise<Pick<ChaosRun, 'lost' | 'doubled'>> {
  const rows = (await knex(table).select('serial', 'pid').orderBy('id')) as { serial: string; pid: number }[];
  const writers = new Map<string, number[]>();
  for (const row of rows) writers.set(row.serial, [...(writers.get(row.serial) ?? []), row.pid]);
  return {
    lost: Array.from({ length: PAYMENTS }, (_, i) => serialOf(i)).filter((s) => !writers.has(s)),
    doubled: [...writers]
      .filter(([, pids]) => pids.length > 1)
      .map(([serial, pids]) => {
        const who = pids.map((pid) => writer(pid, serial));
        return { serial, writers: who, inCrashWindow: who.filter((w) => w.cutOff).length >= pids.length - 1 };
      }),
  };
}

function summary(configuration: Configuration, run: ChaosRun): string {
  const outcomes = [...run.outcomes].map(([kind, n]) => `${kind} ${n}`).join(', ');
  const window = run.doubled.filter((d) => d.inCrashWindow).length;
  return (
    `[chaos] ${configuration.name}, seed ${run.seed}: ${PAYMENTS} payments, ${run.kills} kills, ` +
    `${run.freezes} freezes, ${run.handlerRuns} handler runs (${outcomes}), ${run.alreadyCharged} replays ` +
    `found the charge already made; lost ${run.lost.length}, ` +
    `doubled ${run.doubled.length} (${window} in the crash window), dead-lettered ${run.deadLetters.length}, ` +
    `unsettled ${run.unsettled}; ${(run.durationMs / 1000).toFixed(1)} s`
  );
}

function details(run: ChaosRun): string {
  const some = <T>(items: readonly T[], show: (item: T) => string) =>
    items.slice(0, 5).map(show).join('; ') + (items.length > 5 ? `; … (${items.length} in all)` : '');
  return [
    `replay with CHAOS_SEED=${run.seed}`,
    `lost: ${some(run.lost, (s) => `${s}${run.deadReasons.has(s) ? ` (dead-lettered: ${run.deadReasons.get(s)})` : ''}`)}`,
    `doubled: ${some(run.doubled, (d) => `${d.serial}${d.inCrashWindow ? ' (crash window)' : ''} by ${d.writers.map((w) => `pid ${w.pid} (${w.note})`).join(', ')}`)}`,
    `dead letters: ${some(run.deadLetters, (d) => `${d.keys.join(',')} at attempt ${d.deliveryAttempt} (${d.cause})`)}`,
    `consumers that crashed on their own: ${some(run.crashed, (c) => c)}`,
  ].join('\n');
}

describe('payments while consumer processes are killed and frozen at random', () => {
  for (const [index, configuration] of configurations.entries()) {
    describe(configuration.name, () => {
      it(configuration.promise, { timeout: 60_000 }, async () => {
        const run = await runChaos(configuration, index, SEED);
        console.log(summary(configuration, run));
        const doubleCharges = run.doubled.length;
        expect(
          {
            lost: run.lost.length,
            doubleCharges,
            deadLettered: run.deadLetters.length,
            unsettled: run.unsettled,
            crashedOnTheirOwn: run.crashed.length,
          },
          `${summary(configuration, run)}\n${details(run)}`,
        ).toEqual({ lost: 0, doubleCharges: 0, deadLettered: 0, unsettled: 0, crashedOnTheirOwn: 0 });
        // The chaos must have happened, or the test proved nothing.
        expect(run.kills + run.freezes, details(run)).toBeGreaterThanOrEqual(3);
      });
    });
  }
});
