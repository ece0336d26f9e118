/** The consumer of the seed's payment case: a payment serial number must never charge twice. */
import {
  type IdempotencyContext,
  Idempotent,
  MessageListener,
  type TransportMessage,
} from '@idempotent-mq/core';
import { inject, injectable } from 'inversify';
import type { Ledger } from './ledger.js';

export interface PaymentRequest {
  readonly account: string;
  readonly amount: number;
}

export type PaymentMessage = TransportMessage<PaymentRequest>;

export const LEDGER = Symbol.for('example.ledger');
export const HANDLER_FAULTS = Symbol.for('example.handler-faults');

/** Crashes injected into the handler itself, after its business write and before commit. */
export interface HandlerFaults {
  /** Probability that a run throws mid-handler. */
  readonly crashRate: number;
  readonly random: () => number;
  /** Counts every run of the handler, crashed or not. */
  runs: number;
  crashes: number;
}

@injectable()
@MessageListener({ topic: 'payments', consumerGroup: 'billing', filter: 'PAY', concurrency: 8 })
export class PaymentConsumer {
  constructor(
    @inject(LEDGER) private readonly ledger: Ledger,
    @inject(HANDLER_FAULTS) private readonly faults: HandlerFaults,
  ) {}

  @Idempotent({ key: (m: PaymentMessage) => m.keys })
  async onMessage(m: PaymentMessage, ctx: IdempotencyContext): Promise<void> {
    this.faults.runs++;
    await this.ledger.charge(ctx.trx, ctx.token.key, m.body.account, m.body.amount);
    if (this.faults.random() < this.faults.crashRate) {
      this.faults.crashes++;
      throw new Error(`consumer crashed while charging ${ctx.token.key}`);
    }
  }
}
