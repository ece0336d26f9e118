// A CommonJS app: require() of the ESM packages (Node >= 20.19), no decorators, no container.
require('reflect-metadata');
const { makeIdempotent } = require('@idempotent-mq/core');
const { createIdempotencyTable, KnexIdempotencyStore } = require('@idempotent-mq/knex');
const { RedisIdempotencyCache } = require('@idempotent-mq/redis');
const { Redis } = require('ioredis');
const knexFactory = require('knex');

const run = process.env.RUN_ID;
const tokens = `tokens_${run}`;

async function main() {
  const knex = knexFactory({ client: 'pg', connection: process.env.PG_URL });
  const redis = new Redis(process.env.REDIS_URL);
  const charged = {};
  try {
    await createIdempotencyTable(knex, { tableName: tokens });
    const charge = makeIdempotent(
      async function charge(payment, ctx) {
        charged[ctx.token.key] = (charged[ctx.token.key] ?? 0) + 1;
        return { charged: payment.amount };
      },
      {
        key: (payment) => payment.serial,
        store: new KnexIdempotencyStore(knex, { tableName: tokens }),
        cache: new RedisIdempotencyCache(redis, { keyPrefix: `${run}:` }),
        storeResult: true,
      },
    );
    const results = [];
    for (const serial of ['PAY-1', 'PAY-2', 'PAY-1', 'PAY-2', 'PAY-1'])
      results.push(await charge({ serial, amount: 7 }));
    console.log(JSON.stringify({ charged, results }));
  } finally {
    await knex.schema.dropTableIfExists(tokens);
    await knex.destroy();
    redis.disconnect();
  }
}
main().catch((error) => {
  console.error(error);
  process.exit(1);
});
