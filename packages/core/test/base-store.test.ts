/**
 * The claim lifecycle `BaseIdempotencyStore` writes once, seen through a store of three primitives over a
 * Map: the order of the steps, the hooks an adapter may fill, and the loop's bound.
 */
import { describe, expect, it } from 'vitest';
import {
  BaseIdempotencyStore,
  type ClaimRequest,
  type ClaimResult,
  type IdempotencyRecord,
  type StoreStep,
  type TokenRef,
  UnstorableTokenError,
} from '../src/adapter/index.js';

class MapStore extends BaseIdempotencyStore {
  readonly rows = new Map<string, IdempotencyRecord>();
  readonly steps: string[] = [];
  first: ClaimResult | undefined;
  refuse: string | undefined;
  vanish = false;

  protected override unstorable(): string | undefined {
    return this.refuse;
  }
  protected override claimFirst(): Promise<ClaimResult | undefined> | undefined {
    this.steps.push('first');
    return this.first && Promise.resolve(this.first);
  }
  protected override async guard<T>(
    step: StoreStep,
    _t: TokenRef | undefined,
    work: () => Promise<T>,
  ): Promise<T> {
    this.steps.push(`guard:${step}`);
    try {
      return await work();
    } catch (error) {
      throw new Error(`translated: ${(error as Error).message}`);
    }
  }
  protected async insertIfAbsent(request: ClaimRequest): Promise<IdempotencyRecord | undefined> {
    this.steps.push('insert');
    if (this.rows.has(request.token.key)) return undefined;
    const record: IdempotencyRecord = {
      ...request.token,
      status: 'inProgress',
      owner: request.owner,
      fence: 1,
      createdAt: 0,
    };
    this.rows.set(request.token.key, record);
    return record;
  }
  protected async takeOverIfExpired(): Promise<undefined> {
    this.steps.push('takeover');
    return undefined;
  }
  protected async find(token: TokenRef): Promise<IdempotencyRecord | undefined> {
    this.steps.push('find');
    return this.vanish ? undefined : this.rows.get(token.key);
  }
  renew = async () => false;
  complete = async () => false;
  release = async () => false;
  get = async () => undefined;
  getMany = async () => [];
  purgeExpired = async () => 0;
}

const request = (key: string): ClaimRequest => ({ token: { scope: 's', key }, owner: 'o', leaseMs: 1000 });

describe('BaseIdempotencyStore.claim', () => {
  it('runs guard → claimFirst → insert, and for a taken token insert → takeover → find', async () => {
    const store = new MapStore();
    expect((await store.claim(request('A'))).status).toBe('claimed');
    expect(store.steps).toEqual(['guard:claim', 'first', 'insert']);
    store.steps.length = 0;
    expect((await store.claim(request('A'))).status).toBe('exists');
    expect(store.steps).toEqual(['guard:claim', 'first', 'insert', 'takeover', 'find']);
  });

  it("answers from the adapter's claimFirst without touching the loop", async () => {
    const store = new MapStore();
    const answer: ClaimResult = {
      status: 'exists',
      record: { scope: 's', key: 'B', status: 'inProgress', owner: 'x', fence: 0, createdAt: 0 },
    };
    store.first = answer;
    expect(await store.claim(request('B'))).toBe(answer);
    expect(store.steps).toEqual(['guard:claim', 'first']);
  });

  it('refuses what the adapter cannot store before any step, as UnstorableTokenError naming the reason', async () => {
    const store = new MapStore();
    store.refuse = 'the key is 300 code points; the table holds 255';
    const error = await store.claim(request('C')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnstorableTokenError);
    expect((error as UnstorableTokenError).code).toBe('UNSTORABLE_TOKEN');
    expect((error as Error).message).toContain('300 code points');
    expect(store.steps).toEqual([]);
  });

  it('gives up after maxClaimAttempts when the row keeps vanishing, through the guard', async () => {
    const store = new MapStore({ maxClaimAttempts: 2 });
    await store.claim(request('D'));
    store.vanish = true;
    store.steps.length = 0;
    const error = await store.claim(request('D')).catch((e: unknown) => e);
    // The guard saw (and translated) the InconsistentStateError the loop threw.
    expect((error as Error).message).toMatch(/^translated: Could not claim .* after 2 tries/);
    expect(store.steps.filter((s) => s === 'insert')).toHaveLength(2);
  });

  it('refuses a maxClaimAttempts out of range, naming it', () => {
    expect(() => new MapStore({ maxClaimAttempts: 0 })).toThrow(/maxClaimAttempts.*1 to 100.*got 0/s);
    expect(() => new MapStore({ maxClaimAttempts: Number.NaN })).toThrow(/maxClaimAttempts.*NaN/s);
  });
});
