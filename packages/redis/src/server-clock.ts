/**
 * The latest time a Redis node's clock can show now, bounded from the last time one of the store's
 * scripts read it there: what lets a claim that meets a completed record answer "duplicate" without
 * asking the server the time again.
 */

/** How long a reading of the server's clock is trusted to bound it. */
const TRUSTED_MS = 60_000;
/** How many scope tags (cluster slots) are remembered; the map starts over past it. */
const MAX_TAGS = 1024;

/** The last reading of each node's clock (by scope tag, i.e. by cluster slot), and what it bounds. */
export class ServerClock {
  private readonly readings = new Map<string, { readonly server: number; readonly sentAt: number }>();

  /**
   * Records that the node serving `tag` answered `serverNow` to a command sent at `sentAt` (this
   * process's `performance.now()`): the node's clock read `serverNow` at some moment after `sentAt`.
   */
  observe(tag: string, serverNow: number, sentAt: number): void {
    if (!Number.isFinite(serverNow)) return;
    if (this.readings.size >= MAX_TAGS && !this.readings.has(tag)) this.readings.clear();
    this.readings.set(tag, { server: serverNow, sentAt });
  }

  /**
   * The latest the node's clock can read now, or undefined without a reading of the last minute. Its
   * clock has run at most as far as ours since the command was sent (a monotonic clock, so a step of
   * this machine's wall clock changes nothing); a step forward of the server's own clock is the case
   * the caller's margin covers.
   */
  latest(tag: string): number | undefined {
    const reading = this.readings.get(tag);
    if (!reading) return undefined;
    const elapsed = performance.now() - reading.sentAt;
    return elapsed > TRUSTED_MS ? undefined : reading.server + elapsed;
  }
}
