/** The consumer of the seed's payment case: a payment serial number must never charge twice. */
import {
  type IdempotencyContext,
  Idempotent,
  MessageListener,
  type TransportMessage,
} from '@idempotent-mq/core';
import { inject, injectable, injectFromBase, type Newable } from 'inversify';
import type { Ledger } from './ledger.js';

export interface PaymentRequest {
  readonly account: string;
  readonly amount: number;
}

export type PaymentMessage = TransportMessage<PaymentRequest>;

export const LEDGER = Symbol.for('example.ledger');
export const HANDLER_FAULTS = Symbol.for('example.handler-faults');
export const CONSUMER_PROCESS = Symbol.for('example.consumer-process');

/** Messages one consumer handles at once; on RabbitMQ and NATS also what it holds unacked, so what a kill hits. */
export const CONCURRENCY = 8;

/** Crashes injected into the handler itself, after its business write and before commit. */
export interface HandlerFaults {
  /** Probability that a run throws mid-handler. */
  readonly crashRate: number;
  readonly random: () => number;
  /** Counts every run of the handler, crashed or not. */
  runs: number;
  crashes: number;
  /** Runs cut short because their process was killed. */
  killed: number;
}

/**
 * How a consumer process dies (on brokers that cannot inject these faults, the scenario kills them):
 * `lost ack`, its connection is killed while its handlers run on and commit, so their acks never reach
 * the broker; `crash`, the whole process, handlers included.
 */
export type KillKind = 'lost ack' | 'crash';

/** One consumer process as its handlers see it. */
export interface ConsumerProcess {
  /** Killed with its handlers: none of them commits any more. */
  readonly handlersKilled: boolean;
  /** Called by each run between its write and its commit: where a kill the scenario armed strikes. */
  midHandler(): void;
}

/** Where the consumers listen: the broker's names, and on a shared server the run's own. */
export interface PaymentListenerNames {
  readonly topic: string;
  readonly consumerGroup: string;
  /** The broker's filter: a RocketMQ tag, a RabbitMQ binding key, `'*'` for every message. */
  readonly filter: string;
}

@injectable()
export class PaymentConsumer {
  constructor(
    @inject(LEDGER) private readonly ledger: Ledger,
    @inject(HANDLER_FAULTS) private readonly faults: HandlerFaults,
    @inject(CONSUMER_PROCESS) private readonly process: ConsumerProcess,
  ) {}

  @Idempotent({ key: (m: PaymentMessage) => m.keys })
  async onMessage(m: PaymentMessage, ctx: IdempotencyContext): Promise<void> {
    this.faults.runs++;
    await this.ledger.charge(ctx.trx, ctx.token.key, m.body.account, m.body.amount);
    this.process.midHandler();
    if (this.process.handlersKilled) {
      // The process died here: the transaction never commits.
      this.faults.killed++;
      throw new Error(`the consumer process was killed while charging ${ctx.token.key}`);
    }
    if (this.faults.random() < this.faults.crashRate) {
      this.faults.crashes++;
      throw new Error(`consumer crashed while charging ${ctx.token.key}`);
    }
  }
}

/**
 * `PaymentConsumer` as a listener of `names`. A class per set of names, since a listener's topic and
 * group are metadata of its class: on a shared server each run listens under names of its own.
 */
export function paymentListener(names: PaymentListenerNames): Newable<PaymentConsumer> {
  @injectable()
  @injectFromBase()
  @MessageListener({ ...names, concurrency: CONCURRENCY })
  class PaymentListener extends PaymentConsumer {}
  return PaymentListener;
}
