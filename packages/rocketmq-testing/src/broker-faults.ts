/** Switches for the faults; each counter is the number of next calls it applies to. */
export class BrokerFaults {
  /** Next N acks are answered OK but not applied: the message comes back after its invisible time. */
  dropAcks = 0;
  /** Next N acks are applied, then the response is lost (`'error'`: UNAVAILABLE; `'hang'`: never sent). */
  loseAckResponses = 0;
  ackResponseLoss: 'error' | 'hang' = 'error';
  /** Next N sends store a second copy with the same keys and a new message id (a producer resend). */
  duplicateSends = 0;
  /** Next N sends are stored, then answered UNAVAILABLE: the client resends with the same message id. */
  loseSendResponses = 0;
  /**
   * Next N sent messages are refused and not stored: answered with an INTERNAL_SERVER_ERROR status (a
   * broker failing to store them). The client's own resends count too.
   */
  failSends = 0;
}
