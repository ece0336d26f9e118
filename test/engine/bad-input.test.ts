import {
  type IdempotencyContext,
  IdempotencyModule,
  Idempotent,
  InvalidOptionError,
  KeyFunctionError,
  MissingIdempotencyKeyError,
  PayloadNotSerializableError,
  ResultNotSerializableError,
} from '@idempotent-mq/core';
import { injectable } from 'inversify';
import { describe, expect, it } from 'vitest';
import { harness, type Message, settle } from '../support/engine-harness.js';

interface Loose {
  readonly key?: unknown;
  readonly body?: unknown;
}

@injectable()
class ByKey {
  runs = 0;
  tokens: string[] = [];
  @Idempotent({ key: (m: Loose) => m.key as string })
  async onMessage(_m: Loose, ctx: IdempotencyContext) {
    this.runs++;
    this.tokens.push(ctx.token.key);
  }
}

describe('bad input gets a clear error and loses nothing', () => {
  const missing: [string, unknown][] = [
    ['undefined', undefined],
    ['null', null],
    ['an empty string', ''],
    ['whitespace', ' \t\n '],
    ['a number', 123],
    ['an object', { id: 1 }],
    ['an empty array', []],
    ['an array with an empty part', ['ORDER-1', '']],
    ['an array with a non-string part', ['ORDER-1', 7]],
  ];
  it.each(missing)('a key that is %s is rejected before any claim, naming the scope', async (_label, key) => {
    const h = harness();
    const consumer = h.get(ByKey);
    const r = await settle(consumer.onMessage({ key }));
    const error = (r as { error: MissingIdempotencyKeyError }).error;
    expect(error).toBeInstanceOf(MissingIdempotencyKeyError);
    expect(error.code).toBe('MISSING_KEY');
    expect(error.message).toContain('v1:ByKey.onMessage');
    expect(consumer.runs).toBe(0);
    expect(h.store.size).toBe(0);
    expect(h.outcomes[0]).toMatchObject({ kind: 'failed', unprotected: false });
  });

  it("onMissingKey: 'process' runs a keyless message unprotected, and says so", async () => {
    @injectable()
    class Lenient {
      contexts: IdempotencyContext[] = [];
      @Idempotent({ key: (m: Loose) => m.key as string, onMissingKey: 'process' })
      async onMessage(_m: Loose, ctx: IdempotencyContext) {
        this.contexts.push(ctx);
      }
    }
    const h = harness();
    const consumer = h.get(Lenient);
    await consumer.onMessage({});
    expect(consumer.contexts[0]).toMatchObject({ unprotected: true, trx: undefined });
    expect(h.outcomes[0]).toMatchObject({ kind: 'processed', unprotected: true });
    expect(h.store.size).toBe(0);
  });

  it('a key function that throws leaves no claim behind', async () => {
    @injectable()
    class Throws {
      runs = 0;
      @Idempotent({ key: (m: Message) => (m.keys as string[]).map((k) => k.toUpperCase()) })
      async onMessage(_m: Message) {
        this.runs++;
      }
    }
    const h = harness();
    const r = await settle(h.get(Throws).onMessage({ keys: undefined as never }));
    expect((r as { error: unknown }).error).toBeInstanceOf(KeyFunctionError);
    expect(((r as { error: Error }).error.cause as Error).name).toBe('TypeError');
    expect(h.store.size).toBe(0);
  });

  it('a 1 MB key is hashed to a bounded size, stays distinct, and still catches its duplicate', async () => {
    const h = harness();
    const consumer = h.get(ByKey);
    const huge = 'K'.repeat(1024 * 1024);
    await consumer.onMessage({ key: `${huge}A` });
    await consumer.onMessage({ key: `${huge}B` });
    await consumer.onMessage({ key: `${huge}A` });
    expect(consumer.runs).toBe(2);
    const [a, b] = consumer.tokens as [string, string];
    expect([...a].length).toBeLessThanOrEqual(250);
    expect(a).not.toBe(b);
    expect(a.startsWith('KKKK')).toBe(true);
  });

  it('array keys join canonically: ["a,b"] and ["a", "b"] never collide; ["X"] equals "X"', async () => {
    const h = harness();
    const consumer = h.get(ByKey);
    await consumer.onMessage({ key: ['a,b'] });
    await consumer.onMessage({ key: ['a', 'b'] });
    await consumer.onMessage({ key: ['X'] });
    await consumer.onMessage({ key: 'X' });
    expect(consumer.tokens).toEqual(['a\\,b', 'a,b', 'X']);
  });

  it('a payload that cannot be fingerprinted is rejected before any claim', async () => {
    const h = harness();
    const consumer = h.get(ByKey);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    for (const body of [cyclic, { n: 10n }, { f: () => 1 }]) {
      const r = await settle(consumer.onMessage({ key: 'P-1', body }));
      expect((r as { error: unknown }).error).toBeInstanceOf(PayloadNotSerializableError);
    }
    expect(consumer.runs).toBe(0);
    expect(h.store.size).toBe(0);
  });

  it('a result that cannot be stored rolls the transaction back, and the message is not lost', async () => {
    const effects: string[] = [];
    @injectable()
    class BadResult {
      @Idempotent({ key: (m: Loose) => m.key as string, storeResult: true })
      async onMessage(_m: Loose, ctx: IdempotencyContext<{ onRollback(f: () => void): void }>) {
        effects.push('charged');
        ctx.trx.onRollback(() => effects.pop());
        return { total: 10n };
      }
    }
    const h = harness();
    const r = await settle(h.get(BadResult).onMessage({ key: 'R-1' }));
    expect((r as { error: unknown }).error).toBeInstanceOf(ResultNotSerializableError);
    expect(effects).toEqual([]);
    expect(h.store.size).toBe(0);
  });

  it('in lease mode a result that cannot be stored still completes: the effect must not run twice', async () => {
    @injectable()
    class BadLeaseResult {
      runs = 0;
      @Idempotent({ key: (m: Loose) => m.key as string, storeResult: true, mode: 'lease' })
      async onMessage(_m: Loose) {
        this.runs++;
        return { total: 10n };
      }
    }
    const h = harness();
    const consumer = h.get(BadLeaseResult);
    await consumer.onMessage({ key: 'R-2' });
    await consumer.onMessage({ key: 'R-2' });
    expect(consumer.runs).toBe(1);
    expect(h.logger.at('error').some((l) => l.includes('not JSON-serialisable'))).toBe(true);
  });
});

describe('invalid options are rejected at start-up, naming the option', () => {
  const bad: [string, object][] = [
    ['ttlMs', { ttlMs: 0 }],
    ['ttlMs', { ttlMs: 1.5 }],
    ['leaseMs', { leaseMs: -1 }],
    ['keepAliveMs', { leaseMs: 1000, keepAliveMs: 1000 }],
    ['mode', { mode: 'exactlyOnce' }],
    ['onMissingKey', { onMissingKey: 'skip' }],
    ['onConflict', { onConflict: 'ignore' }],
    ['onFailure', { onFailure: 'drop' }],
    ['onStoreUnavailable', { onStoreUnavailable: 'ignore' }],
    ['storeResult', { storeResult: 'yes' }],
    ['maxKeyLength', { maxKeyLength: 10 }],
    ['cacheTimeoutMs', { cacheTimeoutMs: 0 }],
    ['scope', { scope: '' }],
    ['scopeVersion', { scopeVersion: 'v 2' }],
    ['fingerprint', { fingerprint: 'body' }],
  ];

  it.each(bad)('@Idempotent with a bad %s fails when the class is defined', (option, extra) => {
    const define = () => {
      @injectable()
      class Bad {
        @Idempotent<Message>({ key: (m: Message) => m.keys, ...extra } as never)
        async onMessage(_m: Message) {}
      }
      return Bad;
    };
    expect(define).toThrow(InvalidOptionError);
    expect(define).toThrow(`"@Idempotent(Bad.onMessage).${option}"`);
  });

  it('@Idempotent without a key function fails when the class is defined', () => {
    expect(() => {
      class NoKey {
        @Idempotent<Message>({} as never)
        async onMessage(_m: Message) {}
      }
      return NoKey;
    }).toThrow('"@Idempotent(NoKey.onMessage).key"');
  });

  it.each(bad.filter(([o]) => !['scope', 'scopeVersion', 'fingerprint'].includes(o)))(
    'IdempotencyModule with a bad %s fails when it is built',
    (option, extra) => {
      expect(() => new IdempotencyModule(extra as never)).toThrow(`"IdempotencyModule.${option}"`);
    },
  );

  it('new policy options are checked like the rest', () => {
    for (const [option, value] of [
      ['maxHandlerMs', 5],
      ['transientRetries', 11],
      ['keepAlive', 1],
    ] as const) {
      expect(() => new IdempotencyModule({ [option]: value })).toThrow(`"IdempotencyModule.${option}"`);
    }
  });
});

describe('misspelt and malformed options are refused, naming the nearest valid one', () => {
  it.each([
    [{ ttlMz: 1000 }, '"IdempotencyModule.ttlMz": expected no such option; did you mean "ttlMs"?'],
    [{ leseMs: 1000 }, 'did you mean "leaseMs"?'],
    [{ storeResutl: true }, 'did you mean "storeResult"?'],
    [{ somethingElse: 1 }, 'expected one of "ttlMs"'],
  ])('IdempotencyModule(%o) fails', (options, message) => {
    expect(() => new IdempotencyModule(options as never)).toThrow(message);
  });

  it('a non-object module option fails instead of passing as no options', () => {
    expect(() => new IdempotencyModule('7d' as never)).toThrow(
      'Invalid option "IdempotencyModule": expected an options object, got "7d".',
    );
    expect(() => new IdempotencyModule([] as never)).toThrow('"IdempotencyModule"');
  });

  it('a value is printed as given: NaN is NaN, not null', () => {
    expect(() => new IdempotencyModule({ ttlMs: Number.NaN })).toThrow('got NaN.');
    expect(() => new IdempotencyModule({ leaseMs: Number.POSITIVE_INFINITY })).toThrow('got Infinity.');
  });

  it('@Idempotent refuses a misspelt option and a scope that holds U+0000', () => {
    expect(() => {
      @injectable()
      class Typo {
        @Idempotent<Message>({ key: (m: Message) => m.keys, scpoe: 'payments' } as never)
        async onMessage(_m: Message) {}
      }
      return Typo;
    }).toThrow('"@Idempotent(Typo.onMessage).scpoe": expected no such option; did you mean "scope"?');
    expect(() => {
      @injectable()
      class Nul {
        @Idempotent({ key: (m: Message) => m.keys, scope: 'pay\u0000ments' })
        async onMessage(_m: Message) {}
      }
      return Nul;
    }).toThrow('"@Idempotent(Nul.onMessage).scope"');
  });
});
