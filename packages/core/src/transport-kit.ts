/**
 * What every transport does around a subscription's `handle`, written once for transport authors: call
 * it without ever losing a batch, recognise its settlements, and sleep in a way `stop()` can cut short.
 */
import { type Backoff, backoffDelay } from './backoff.js';
import type { Settlement, SubscriptionSpec, TransportMessage } from './ports/message-transport.js';

/** A retry that spends no attempt: a transport whose broker counts redeliveries carries it out in place. */
export type Wait = Extract<Settlement, { action: 'retry' }> & { readonly countsAsAttempt: false };

/** Whether `s` is a well-formed settlement (a retry needs a finite delay and a boolean `countsAsAttempt`). */
export function isSettlement(s: unknown): s is Settlement {
  const action = (s as { action?: unknown } | null)?.action;
  if (action === 'ack') return true;
  if (action === 'retry') {
    const { delayMs, countsAsAttempt } = s as { delayMs?: unknown; countsAsAttempt?: unknown };
    return typeof delayMs === 'number' && Number.isFinite(delayMs) && typeof countsAsAttempt === 'boolean';
  }
  return action === 'deadLetter';
}

/** Whether `s` is a wait (a retry that spends no attempt). */
export function isWait(s: Settlement): s is Wait {
  return s.action === 'retry' && s.countsAsAttempt === false;
}

/**
 * The subscription's settlements for `messages`, aligned with them; never rejects. A `handle` that
 * throws, or answers anything but one well-formed settlement per message, is a bug upstream: every
 * message of the batch then becomes a failure retry after `failureBackoff` (by its delivery attempt),
 * and `onProblem` hears what went wrong, so that the batch comes back instead of being lost.
 */
export async function settlementsOf(
  spec: Pick<SubscriptionSpec, 'handle'>,
  messages: readonly TransportMessage[],
  failureBackoff: Backoff,
  onProblem: (problem: string) => void,
): Promise<Settlement[]> {
  let problem: string;
  try {
    const settlements = await spec.handle(messages);
    if (
      Array.isArray(settlements) &&
      settlements.length === messages.length &&
      settlements.every(isSettlement)
    ) {
      return settlements;
    }
    problem = `the handler answered ${describeAnswer(settlements)} for ${messages.length} message(s)`;
  } catch (error) {
    problem = `the handler threw: ${error instanceof Error ? error.message : String(error)}`;
  }
  onProblem(problem);
  return messages.map((m) => ({
    action: 'retry',
    delayMs: backoffDelay(failureBackoff, m.deliveryAttempt),
    countsAsAttempt: true,
    reason: problem,
  }));
}

/** Sleeps `ms` (at most what a timer can hold), or less if `signal` aborts first; never rejects. */
export function sleepUnless(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, Math.min(Math.max(0, ms), 2 ** 31 - 1));
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

function describeAnswer(answer: unknown): string {
  if (!Array.isArray(answer)) return typeof answer;
  return `${answer.length} settlement(s)${answer.every(isSettlement) ? '' : ' (some malformed)'}`;
}
