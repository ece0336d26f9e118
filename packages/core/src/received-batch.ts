/**
 * What a transport does with the messages one receive brought, written once for the transports whose
 * broker counts every redelivery (see each transport's README): decode each, hand the decodable ones to the
 * subscription's `handle` as one batch, dead-letter the others with the reason, carry out each
 * settlement, and hold a wait in place rather than give it back (which the broker would count as a
 * delivery). The transport brings the broker calls; the order of the steps lives here.
 */
import type { Settlement, TransportMessage } from './ports/message-transport.js';
import { isWait, sleepUnless, type Wait } from './transport-kit.js';

/** A received message as handlers see it, or why it cannot be handled (it is dead-lettered with that). */
export type ReceivedMessage =
  | { readonly ok: true; readonly message: TransportMessage }
  | { readonly ok: false; readonly reason: string };

/** The broker side of {@link handleReceivedBatch}, for one batch of items `H` (the transport's own). */
export interface ReceivedBatchSteps<H> {
  /** The item as handlers see it; `undefined` when it is not to be handled here at all (it is released). */
  decode(item: H): ReceivedMessage | undefined;
  /** The subscription's settlements for `messages`, aligned with them; never rejects (`settlementsOf`). */
  handle(messages: TransportMessage[]): Promise<Settlement[]>;
  /** Carries out a settlement with the broker (here: the dead letter of an item that cannot be decoded). */
  settle(item: H, settlement: Settlement): Promise<void>;
  /** Carries out the handler's settlement for `item`, waits included (see {@link carryOutInPlace}). */
  carryOut(item: H, message: TransportMessage, settlement: Settlement): Promise<void>;
  /** The item is settled for good (or dropped): free its concurrency slot. Called at least once per item. */
  release(item: H): void;
}

/**
 * Handles one received batch: the decodable items go to `handle` together, the others are dead-lettered
 * with the reason, and each item holds its slot until its own settlement is carried out (a wait in place
 * included), so one slow settlement never holds the others' slots. Resolves once every item is settled;
 * every item is released, whatever fails.
 */
export async function handleReceivedBatch<H>(
  batch: readonly H[],
  steps: ReceivedBatchSteps<H>,
): Promise<void> {
  try {
    const decoded: { item: H; message: TransportMessage }[] = [];
    const settled: Promise<void>[] = [];
    for (const item of batch) {
      const result = steps.decode(item);
      if (result === undefined) steps.release(item);
      else if (result.ok) decoded.push({ item, message: result.message });
      else {
        const poison: Settlement = { action: 'deadLetter', reason: result.reason };
        settled.push(steps.settle(item, poison).finally(() => steps.release(item)));
      }
    }
    if (decoded.length > 0) {
      const settlements = await steps.handle(decoded.map((d) => d.message));
      decoded.forEach((d, i) => {
        const settlement = settlements[i] as Settlement;
        settled.push(steps.carryOut(d.item, d.message, settlement).finally(() => steps.release(d.item)));
      });
    }
    await Promise.all(settled);
  } finally {
    for (const item of batch) steps.release(item);
  }
}

/** The broker side of {@link carryOutInPlace}, for one message. */
export interface InPlaceSteps {
  /** False once `stop()` began: a wait can no longer be held. */
  running(): boolean;
  /** True once the transport was killed: nothing more reaches the broker. */
  dead(): boolean;
  /** Aborted when `stop()` begins, which cuts a wait short. */
  readonly stopping: AbortSignal;
  /** The wait is held here for its delay (report it: `inPlace: true`). */
  holding(wait: Wait): void;
  /**
   * Whether the message was lost while it waited (e.g. not renewed for most of its lease): then nothing
   * more is done with it here and the broker gives it out again. @defaultValue never
   */
  lost?(wait: Wait): boolean;
  /** The subscription's settlement for the message, handed to `handle` again after a wait. */
  handleAgain(): Promise<Settlement>;
  /** Carries out a settlement with the broker. */
  settle(settlement: Settlement): Promise<void>;
  /**
   * Gives a wait back to the broker at `stop()`, with what is left of its delay: the broker counts the
   * delivery when the message comes back, as it would after a crash.
   */
  handBack(wait: Wait): Promise<void>;
}

/**
 * Carries out the registry's settlement for one message. A wait is carried out in place, as many times
 * as the registry answers one: the message stays here (the transport keeps it from redelivery), and
 * after the delay it goes to `handle` again with the same delivery attempt. Only a settlement that is
 * not a wait reaches the broker; a wait under way at `stop()` is handed back for the rest of its delay.
 */
export async function carryOutInPlace(first: Settlement, steps: InPlaceSteps): Promise<void> {
  let settlement = first;
  while (isWait(settlement)) {
    const wait = settlement;
    if (!steps.running()) return steps.handBack(wait);
    steps.holding(wait);
    const wakeAt = Date.now() + wait.delayMs;
    await sleepUnless(wait.delayMs, steps.stopping);
    if (steps.dead()) return;
    if (!steps.running()) return steps.handBack({ ...wait, delayMs: Math.max(0, wakeAt - Date.now()) });
    if (steps.lost?.(wait)) return;
    settlement = await steps.handleAgain();
  }
  await steps.settle(settlement);
}
