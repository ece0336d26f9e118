import { RedisIdempotencyCache } from '@idempotent-mq/redis';
import { Redis } from 'ioredis';

const redis = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: 1 });
await new Promise((r) => redis.once('ready', r));
const cache = new RedisIdempotencyCache(redis, { keyPrefix: 'bench:dbg:1:' });
const t = { scope: 'v1:Consumer.onMessage', key: 'dup-1' };
await cache.set(t, {}, 60000);
for (const round of [1, 2, 3]) {
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < 1000) {
    await cache.get(t);
    n++;
  }
  let m = 0;
  const t1 = performance.now();
  while (performance.now() - t1 < 1000) {
    await redis.get('x');
    m++;
  }
  console.log('cache.get/s', n, 'raw get/s', m, (n / m).toFixed(2));
}
await cache.delete(t);
redis.disconnect();
