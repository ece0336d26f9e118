/**
 * What the engine tells the instrumentation, kept out of the message's path: each message's probe,
 * each store and cache call's timing, the transaction's begin and commit, the outcome. A probe that
 * throws is logged and the message goes on; a message without a probe costs nothing here.
 */
import type { DeliveryInfo } from '../context.js';
import type { Execution } from '../outcome.js';
import type {
  IdempotencyInstrumentation,
  InstrumentedHandler,
  MessageProbe,
  StepOperation,
  StepTarget,
  StepTiming,
} from '../ports/instrumentation.js';
import type { IdempotencyLogger } from '../ports/logger.js';

/** The engine's side of the instrumentation port, for one engine. */
export class ProbeReports {
  constructor(
    private readonly instrumentation: IdempotencyInstrumentation | undefined,
    private readonly logger: IdempotencyLogger,
  ) {}

  /** The instrumentation's probe of a message: none when it declines the message, or throws. */
  probeOf(
    handler: InstrumentedHandler,
    message: unknown,
    info: DeliveryInfo | undefined,
  ): MessageProbe | undefined {
    if (!this.instrumentation) return undefined;
    try {
      return this.instrumentation.startMessage(message, handler, info);
    } catch (error) {
      this.logger.error('the instrumentation threw; this message goes uninstrumented', {
        error: String(error),
      });
      return undefined;
    }
  }

  /** Tells `probe` that a store or cache call started at `startedAt` has ended. */
  step(
    probe: MessageProbe,
    target: StepTarget,
    operation: StepOperation,
    startedAt: number,
    error?: unknown,
  ): void {
    const durationMs = performance.now() - startedAt;
    const timing = { target, operation, startedAt, durationMs, messages: 1, repeated: false };
    this.report(probe, error === undefined ? timing : { ...timing, error });
  }

  /** A batch's one cache read, told to each message's probe (counted once: `repeated` after the first). */
  batchStep(probes: readonly (MessageProbe | undefined)[], startedAt: number, error?: unknown): void {
    const durationMs = performance.now() - startedAt;
    const first = {
      target: 'cache',
      operation: 'getMany',
      startedAt,
      durationMs,
      messages: probes.length,
      repeated: false,
      ...(error === undefined ? {} : { error }),
    } as const;
    const again = { ...first, repeated: true };
    let told = false;
    for (const probe of probes) {
      if (!probe) continue;
      this.report(probe, told ? again : first);
      told = true;
    }
  }

  /** A transaction whose `begin` (until the work starts) and `commit` / `rollback` (after it) are told. */
  async transaction<T>(
    probe: MessageProbe,
    run: (work: (tx: unknown) => Promise<T>) => Promise<T>,
    work: (tx: unknown) => Promise<T>,
  ): Promise<T> {
    const begun = performance.now();
    let worked: number | undefined;
    let workFailed = false;
    try {
      const value = await run(async (tx) => {
        this.step(probe, 'store', 'begin', begun);
        try {
          return await work(tx);
        } catch (error) {
          workFailed = true;
          throw error;
        } finally {
          worked = performance.now();
        }
      });
      this.step(probe, 'store', 'commit', worked ?? begun);
      return value;
    } catch (error) {
      if (worked === undefined) this.step(probe, 'store', 'begin', begun, error);
      else if (workFailed) this.step(probe, 'store', 'rollback', worked);
      else this.step(probe, 'store', 'commit', worked, error);
      throw error;
    }
  }

  /** The message's outcome, to its probe. */
  end(probe: MessageProbe, outcome: Execution): void {
    try {
      probe.end(outcome);
    } catch (error) {
      this.logger.error('the instrumentation threw', { error: String(error) });
    }
  }

  private report(probe: MessageProbe, timing: StepTiming): void {
    try {
      probe.step(timing);
    } catch (error) {
      this.logger.error('the instrumentation threw', { error: String(error) });
    }
  }
}
