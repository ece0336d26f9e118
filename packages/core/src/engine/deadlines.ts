/**
 * The engine's timers: every handler bound and every lease renewal of one length share one armed timer,
 * instead of a timer each. Most handlers finish long before their bound, so arming and clearing a timer
 * per message (about 0.6 µs and a Timeout object each, twice per message) was work thrown away.
 */
import type { Clock } from '../ports/clock.js';

/** A pending call made by {@link Deadlines.after}; cancel it with {@link Deadlines.cancel}. */
export interface Deadline {
  /** When it falls due, on the deadlines' clock. */
  readonly at: number;
}

/** One pending call, in its lane's list (oldest first). */
interface Entry extends Deadline {
  readonly fire: () => void;
  lane: Lane | undefined;
  prev: Entry | undefined;
  next: Entry | undefined;
}

/**
 * The calls due `ms` after they were made, in the order they were made: that is also the order they fall
 * due (on a clock that does not step back), so the head is always the next one, and one timer armed for
 * it serves them all. A cancelled call leaves the list at once; the timer is not touched: when it fires
 * it runs what is due and re-arms for the new head, so a lane under steady traffic arms about one timer
 * per `ms`, whatever the rate.
 */
class Lane {
  head: Entry | undefined;
  tail: Entry | undefined;
  armed = false;

  constructor(
    private readonly clock: Clock,
    private readonly ms: number,
  ) {}

  add(fire: () => void): Entry {
    const entry: Entry = {
      at: this.clock.now() + this.ms,
      fire,
      lane: this,
      prev: this.tail,
      next: undefined,
    };
    if (this.tail) this.tail.next = entry;
    else this.head = entry;
    this.tail = entry;
    if (!this.armed) this.arm(entry.at);
    return entry;
  }

  remove(entry: Entry): void {
    if (entry.prev) entry.prev.next = entry.next;
    else this.head = entry.next;
    if (entry.next) entry.next.prev = entry.prev;
    else this.tail = entry.prev;
    entry.lane = entry.prev = entry.next = undefined;
  }

  private arm(at: number): void {
    this.armed = true;
    this.clock.setTimeout(() => this.due(), Math.max(0, at - this.clock.now()));
  }

  /**
   * The timer fired: runs every call now due, then re-arms for the next one (if any). A call that throws
   * (none should) does not keep the others from running: its error is thrown once the lane is re-armed,
   * as a timer of its own would have thrown it.
   */
  private due(): void {
    this.armed = false;
    const now = this.clock.now();
    let failure: { error: unknown } | undefined;
    for (let entry = this.head; entry && entry.at <= now; entry = this.head) {
      this.remove(entry);
      try {
        entry.fire();
      } catch (error) {
        failure ??= { error };
      }
    }
    if (this.head) this.arm(this.head.at);
    if (failure) throw failure.error;
  }
}

/**
 * Calls due after a fixed delay, one armed timer per distinct delay (a policy's `maxHandlerMs`,
 * `leaseMs`, `keepAliveMs`: a handful per process). Each fires at its time, to the clock's resolution.
 */
export class Deadlines {
  readonly #lanes = new Map<number, Lane>();

  constructor(private readonly clock: Clock) {}

  /** Calls `fire` `ms` from now, unless cancelled first. `fire` must not throw. */
  after(ms: number, fire: () => void): Deadline {
    let lane = this.#lanes.get(ms);
    if (!lane) {
      lane = new Lane(this.clock, ms);
      this.#lanes.set(ms, lane);
    }
    return lane.add(fire);
  }

  /** Cancels a call not yet made; a call made or cancelled already is left as it is. */
  cancel(deadline: Deadline | undefined): void {
    const entry = deadline as Entry | undefined;
    entry?.lane?.remove(entry);
  }

  /**
   * `work`, bounded by `ms`: it settles as `work` does within `ms`, else rejects with `error()`. `work`
   * itself goes on, and what it settles to later is dropped.
   */
  bound<T>(work: PromiseLike<T>, ms: number, error: () => unknown): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const deadline = this.after(ms, () => reject(error()));
      // A native promise is used as it is (no extra tick); anything else is adopted first.
      Promise.resolve(work).then(
        (value) => {
          this.cancel(deadline);
          resolve(value);
        },
        (failure: unknown) => {
          this.cancel(deadline);
          reject(failure);
        },
      );
    });
  }
}
