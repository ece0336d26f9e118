/**
 * A RocketMQ 5 proxy and broker in one, for tests: a gRPC `MessagingService` on 127.0.0.1 that
 * implements what rocketmq-client-nodejs uses, with at-least-once semantics and fault injection.
 *
 * - Topics are created on first use; each consumer group gets every message of a topic (from the
 *   first), and within a group a received message is invisible until acked or its invisible time ends.
 * - Every delivery has a new receipt handle; only the newest, unexpired one can ack, change the invisible
 *   time or dead-letter the message (else INVALID_RECEIPT_HANDLE, 40013, as a real proxy answers).
 * - A message comes back with `deliveryAttempt + 1`; past `maxDeliveryAttempts` the broker moves it to
 *   the group's dead-letter queue itself. ForwardMessageToDeadLetterQueue does it on the client's word.
 * - Tag expressions (`*`, `A || B`) filter; SQL92 filters are accepted and recorded but not evaluated.
 * - Faults: lost acks (answered OK, not applied), lost ack responses (applied, then the response fails
 *   or never arrives), duplicate sends (a second copy with a new id), lost send responses (the client
 *   resends with the same id), a restart on the same port, an outage, a server that never sends settings.
 *
 * State survives a restart or an outage, as a broker's commit log does.
 */
import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import durationPb from 'google-protobuf/google/protobuf/duration_pb.js';
import timestampPb from 'google-protobuf/google/protobuf/timestamp_pb.js';
import { pbDefinition as d, MessagingServiceService, pbService as s } from '../proto.js';

type Message = InstanceType<typeof d.Message>;
type Status = InstanceType<typeof d.Status>;
type TelemetryCommand = InstanceType<typeof s.TelemetryCommand>;
type Code = (typeof d.Code)[keyof typeof d.Code];

export interface RocketMQTestBrokerOptions {
  /** The port to listen on. @defaultValue `0` (a free one) */
  readonly port?: number;
  /** Deliveries after which the broker dead-letters a message itself (RocketMQ: 16 retries). @defaultValue `17` */
  readonly maxDeliveryAttempts?: number;
  /** Never answer the telemetry stream with settings: the client's start-up then hangs. @defaultValue `false` */
  readonly silentTelemetry?: boolean;
  /** `receive_batch_size` in the settings sent to consumers. @defaultValue `32` */
  readonly receiveBatchSize?: number;
  /** `max_body_size` in the settings sent to producers. @defaultValue 4 MiB */
  readonly maxBodySize?: number;
}

/** A message as stored. */
export interface StoredMessage {
  readonly offset: number;
  readonly messageId: string;
  readonly topic: string;
  readonly body: Buffer;
  readonly tag?: string;
  readonly keys: readonly string[];
  readonly properties: Readonly<Record<string, string>>;
  readonly bornAt: number;
  readonly messageGroup?: string;
  readonly storedAt: number;
  /** Set on copies that a fault made. */
  readonly duplicateOf?: string;
}

export interface DeliveryRecord {
  readonly group: string;
  readonly topic: string;
  readonly messageId: string;
  readonly keys: readonly string[];
  readonly attempt: number;
  readonly at: number;
  readonly invisibleMs: number;
}

export interface AckRecord {
  readonly group: string;
  readonly messageId: string;
  readonly keys: readonly string[];
  readonly at: number;
  /** False when a fault dropped it (or the handle was stale). */
  readonly applied: boolean;
  readonly code: number;
}

export interface InvisibleChangeRecord {
  readonly group: string;
  readonly messageId: string;
  readonly durationMs: number;
  readonly at: number;
  readonly code: number;
}

export interface DeadLetterRecord {
  readonly group: string;
  /** `%DLQ%<group>`, as RocketMQ names it. */
  readonly dlqTopic: string;
  readonly message: StoredMessage;
  readonly deliveryAttempt: number;
  /** `forwarded`: the client asked (ForwardMessageToDeadLetterQueue); `maxDeliveryAttempts`: the broker did. */
  readonly cause: 'forwarded' | 'maxDeliveryAttempts';
  readonly at: number;
}

export interface ClientRecord {
  readonly clientId: string;
  readonly clientType: string;
  readonly namespace?: string;
  /** The `authorization` header, when the client signs its requests. */
  readonly authorization?: string;
  readonly group?: string;
  readonly topics: readonly string[];
  /** A consumer's filters as it declared them: `TAG` or `SQL`, and the expression. */
  readonly filters: readonly {
    readonly topic: string;
    readonly type: 'TAG' | 'SQL';
    readonly expression: string;
  }[];
}

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
}

interface DeliveryState {
  status: 'ready' | 'invisible' | 'acked' | 'dead';
  attempts: number;
  visibleAt: number;
  handle?: string;
}

interface HandleRef {
  readonly group: string;
  readonly topic: string;
  readonly offset: number;
}

const HOST = '127.0.0.1';

export class RocketMQTestBroker {
  readonly faults = new BrokerFaults();
  readonly #options: Required<Omit<RocketMQTestBrokerOptions, 'port'>>;
  #port: number;
  #server: grpc.Server | undefined;
  #serving = false;
  #closed = false;
  /** The bind in progress, if any: stopping waits for it so that no server is left listening. */
  #listening: Promise<void> = Promise.resolve();
  readonly #topics = new Map<string, StoredMessage[]>();
  /** `group\u0000topic` → offset → state. */
  readonly #groups = new Map<string, Map<number, DeliveryState>>();
  readonly #handles = new Map<string, HandleRef>();
  readonly #deliveries: DeliveryRecord[] = [];
  readonly #acks: AckRecord[] = [];
  readonly #changes: InvisibleChangeRecord[] = [];
  readonly #deadLetters: DeadLetterRecord[] = [];
  readonly #clients = new Map<string, ClientRecord>();
  readonly #telemetryCalls = new Set<grpc.ServerDuplexStream<TelemetryCommand, TelemetryCommand>>();
  readonly #hungCalls = new Set<() => void>();
  #nextId = 0;

  private constructor(options: RocketMQTestBrokerOptions) {
    this.#port = options.port ?? 0;
    this.#options = {
      maxDeliveryAttempts: options.maxDeliveryAttempts ?? 17,
      silentTelemetry: options.silentTelemetry ?? false,
      receiveBatchSize: options.receiveBatchSize ?? 32,
      maxBodySize: options.maxBodySize ?? 4 * 1024 * 1024,
    };
  }

  /** Starts a broker on 127.0.0.1 and a free port (or `options.port`). */
  static async start(options: RocketMQTestBrokerOptions = {}): Promise<RocketMQTestBroker> {
    const broker = new RocketMQTestBroker(options);
    await broker.#listen();
    return broker;
  }

  /** What to give the client as `endpoints`. */
  get endpoints(): string {
    return `${HOST}:${this.#port}`;
  }

  get port(): number {
    return this.#port;
  }

  get serving(): boolean {
    return this.#serving;
  }

  // ---- lifecycle and faults ------------------------------------------------------------------

  /** Goes down (connections cut, calls fail with UNAVAILABLE) and comes back on the same port after `downMs`. */
  async restart(downMs = 0): Promise<void> {
    await this.stopServing();
    if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
    await this.resumeServing();
  }

  /**
   * Starts an outage: the port is closed until `resumeServing()`. State is kept. Resolves once the
   * listening socket and every connection are closed.
   */
  async stopServing(): Promise<void> {
    await this.#listening;
    const server = this.#server;
    this.#server = undefined;
    this.#serving = false;
    for (const release of this.#hungCalls) release();
    this.#hungCalls.clear();
    for (const call of this.#telemetryCalls) {
      try {
        call.end();
      } catch {
        // already gone
      }
    }
    this.#telemetryCalls.clear();
    if (server) await shutDown(server);
  }

  /** Ends an outage: listens again on the same port (not after `close()`). */
  async resumeServing(): Promise<void> {
    await this.#listening;
    if (!this.#serving && !this.#closed) await this.#listen();
  }

  /**
   * Stops for good: no server, connection or timer of the broker is left (a `restart` under way does
   * not come back). The recorded state stays readable.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await this.stopServing();
  }

  // ---- inspection -----------------------------------------------------------------------------

  /** Every stored message (fault copies included), of a topic or all. */
  messages(topic?: string): StoredMessage[] {
    return topic ? [...(this.#topics.get(topic) ?? [])] : [...this.#topics.values()].flat();
  }

  deliveries(filter: { group?: string; messageId?: string; key?: string } = {}): DeliveryRecord[] {
    return this.#deliveries.filter(
      (r) =>
        (filter.group === undefined || r.group === filter.group) &&
        (filter.messageId === undefined || r.messageId === filter.messageId) &&
        (filter.key === undefined || r.keys.includes(filter.key)),
    );
  }

  acks(group?: string): AckRecord[] {
    return this.#acks.filter((a) => group === undefined || a.group === group);
  }

  /** Message ids the group has acknowledged for good (applied acks). */
  acked(group: string): string[] {
    return this.acks(group)
      .filter((a) => a.applied)
      .map((a) => a.messageId);
  }

  invisibleChanges(group?: string): InvisibleChangeRecord[] {
    return this.#changes.filter((c) => group === undefined || c.group === group);
  }

  deadLetters(group?: string): DeadLetterRecord[] {
    return this.#deadLetters.filter((r) => group === undefined || r.group === group);
  }

  clients(): ClientRecord[] {
    return [...this.#clients.values()];
  }

  /** Where a message stands for a group: never seen, waiting, invisible, acked or dead. */
  stateOf(group: string, messageId: string): 'unknown' | DeliveryState['status'] {
    for (const [topic, messages] of this.#topics) {
      const message = messages.find((m) => m.messageId === messageId);
      if (message) return this.#groupState(group, topic).get(message.offset)?.status ?? 'ready';
    }
    return 'unknown';
  }

  /** Stores a message directly, bypassing any client (e.g. a body no codec can read). */
  inject(
    topic: string,
    message: {
      body: Buffer | string;
      keys?: readonly string[];
      tag?: string;
      properties?: Record<string, string>;
    },
  ): StoredMessage {
    return this.#store({
      topic,
      messageId: this.#newMessageId(),
      body: Buffer.isBuffer(message.body) ? message.body : Buffer.from(message.body),
      keys: [...(message.keys ?? [])],
      tag: message.tag,
      properties: { ...(message.properties ?? {}) },
      bornAt: Date.now(),
    });
  }

  // ---- the service ----------------------------------------------------------------------------

  #listen(): Promise<void> {
    const listening = (async () => {
      const server = new grpc.Server();
      server.addService(MessagingServiceService, this.#implementation());
      try {
        this.#port = await new Promise<number>((resolve, reject) => {
          server.bindAsync(`${HOST}:${this.#port}`, grpc.ServerCredentials.createInsecure(), (error, port) =>
            error ? reject(error) : resolve(port),
          );
        });
      } catch (error) {
        await shutDown(server);
        throw error;
      }
      this.#server = server;
      this.#serving = true;
    })();
    this.#listening = listening.catch(() => undefined);
    return listening;
  }

  #implementation(): grpc.UntypedServiceImplementation {
    const unimplemented = (_call: unknown, callback: grpc.sendUnaryData<never>) =>
      callback({ code: grpc.status.UNIMPLEMENTED, details: 'not implemented by the test broker' });
    return {
      queryRoute: this.#unary(
        (call: grpc.ServerUnaryCall<InstanceType<typeof s.QueryRouteRequest>, unknown>) => {
          this.#remember(call.metadata);
          const topic = call.request.getTopic();
          return new s.QueryRouteResponse()
            .setStatus(ok())
            .setMessageQueuesList([this.#queue(topic?.getName() ?? '', topic?.getResourceNamespace())]);
        },
      ),
      heartbeat: this.#unary(() => new s.HeartbeatResponse().setStatus(ok())),
      notifyClientTermination: this.#unary(() => new s.NotifyClientTerminationResponse().setStatus(ok())),
      queryAssignment: this.#unary(
        (call: grpc.ServerUnaryCall<InstanceType<typeof s.QueryAssignmentRequest>, unknown>) => {
          const topic = call.request.getTopic()?.getName() ?? '';
          return new s.QueryAssignmentResponse()
            .setStatus(ok())
            .setAssignmentsList([new d.Assignment().setMessageQueue(this.#queue(topic))]);
        },
      ),
      endTransaction: this.#unary(() => new s.EndTransactionResponse().setStatus(ok())),
      sendMessage: (
        call: grpc.ServerUnaryCall<InstanceType<typeof s.SendMessageRequest>, unknown>,
        callback: grpc.sendUnaryData<unknown>,
      ) => this.#sendMessage(call, callback),
      receiveMessage: (
        call: grpc.ServerWritableStream<InstanceType<typeof s.ReceiveMessageRequest>, unknown>,
      ) => {
        void this.#receiveMessage(call);
      },
      ackMessage: (
        call: grpc.ServerUnaryCall<InstanceType<typeof s.AckMessageRequest>, unknown>,
        callback: grpc.sendUnaryData<unknown>,
      ) => this.#ackMessage(call, callback),
      changeInvisibleDuration: this.#unary(
        (call: grpc.ServerUnaryCall<InstanceType<typeof s.ChangeInvisibleDurationRequest>, unknown>) =>
          this.#changeInvisibleDuration(call.request),
      ),
      forwardMessageToDeadLetterQueue: this.#unary(
        (
          call: grpc.ServerUnaryCall<InstanceType<typeof s.ForwardMessageToDeadLetterQueueRequest>, unknown>,
        ) => this.#forwardToDeadLetterQueue(call.request),
      ),
      telemetry: (call: grpc.ServerDuplexStream<TelemetryCommand, TelemetryCommand>) => this.#telemetry(call),
      pullMessage: (call: grpc.ServerWritableStream<unknown, unknown>) =>
        call.emit('error', {
          code: grpc.status.UNIMPLEMENTED,
          details: 'not implemented by the test broker',
        }),
      updateOffset: unimplemented,
      getOffset: unimplemented,
      queryOffset: unimplemented,
      recallMessage: unimplemented,
      syncLiteSubscription: unimplemented,
    };
  }

  #unary<Req>(answer: (call: grpc.ServerUnaryCall<Req, unknown>) => unknown) {
    return (call: grpc.ServerUnaryCall<Req, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      try {
        callback(null, answer(call));
      } catch (error) {
        callback({ code: grpc.status.INTERNAL, details: String(error) });
      }
    };
  }

  #queue(topic: string, namespace = '') {
    return new d.MessageQueue()
      .setTopic(new d.Resource().setName(topic).setResourceNamespace(namespace))
      .setId(0)
      .setPermission(d.Permission.READ_WRITE)
      .setBroker(
        new d.Broker()
          .setName('test-broker')
          .setId(0)
          .setEndpoints(
            new d.Endpoints()
              .setScheme(d.AddressScheme.IPV4)
              .setAddressesList([new d.Address().setHost(HOST).setPort(this.#port)]),
          ),
      )
      .setAcceptMessageTypesList([d.MessageType.NORMAL, d.MessageType.FIFO, d.MessageType.DELAY]);
  }

  #telemetry(call: grpc.ServerDuplexStream<TelemetryCommand, TelemetryCommand>): void {
    this.#telemetryCalls.add(call);
    const metadata = call.metadata;
    call.on('data', (command: TelemetryCommand) => {
      const settings = command.getSettings();
      if (!settings) return;
      this.#remember(metadata, settings);
      if (this.#options.silentTelemetry) return;
      try {
        call.write(new s.TelemetryCommand().setStatus(ok()).setSettings(this.#settingsFor(settings)));
      } catch {
        // the client went away meanwhile
      }
    });
    call.on('end', () => {
      this.#telemetryCalls.delete(call);
      try {
        call.end();
      } catch {
        // already ended
      }
    });
    call.on('error', () => this.#telemetryCalls.delete(call));
  }

  #settingsFor(client: InstanceType<typeof d.Settings>) {
    const backoff = new d.RetryPolicy()
      .setMaxAttempts(this.#options.maxDeliveryAttempts)
      .setExponentialBackoff(
        new d.ExponentialBackoff().setInitial(duration(1000)).setMax(duration(60_000)).setMultiplier(2),
      );
    const settings = new d.Settings()
      .setClientType(client.getClientType() ?? d.ClientType.CLIENT_TYPE_UNSPECIFIED)
      .setBackoffPolicy(backoff)
      .setRequestTimeout(client.getRequestTimeout() ?? duration(3000));
    const accessPoint = client.getAccessPoint();
    if (accessPoint) settings.setAccessPoint(accessPoint);
    const publishing = client.getPublishing();
    if (publishing) {
      settings.setPublishing(
        new d.Publishing()
          .setTopicsList(publishing.getTopicsList())
          .setMaxBodySize(this.#options.maxBodySize)
          .setValidateMessageType(true),
      );
    }
    const subscription = client.getSubscription();
    if (subscription) {
      const answer = new d.Subscription()
        .setSubscriptionsList(subscription.getSubscriptionsList())
        .setFifo(false)
        .setReceiveBatchSize(this.#options.receiveBatchSize)
        .setLongPollingTimeout(subscription.getLongPollingTimeout() ?? duration(30_000));
      const group = subscription.getGroup();
      if (group) answer.setGroup(group);
      settings.setSubscription(answer);
    }
    return settings;
  }

  #remember(metadata: grpc.Metadata, settings?: InstanceType<typeof d.Settings>): void {
    const clientId = String(metadata.get('x-mq-client-id')[0] ?? '');
    if (!clientId) return;
    const known = this.#clients.get(clientId);
    const namespace = metadata.get('x-mq-namespace')[0];
    const authorization = metadata.get('authorization')[0];
    const subscription = settings?.getSubscription();
    const publishing = settings?.getPublishing();
    const clientType = settings?.getClientType();
    this.#clients.set(clientId, {
      clientId,
      clientType:
        clientType !== undefined
          ? (Object.entries(d.ClientType).find(([, v]) => v === clientType)?.[0] ?? String(clientType))
          : (known?.clientType ?? 'UNKNOWN'),
      namespace: namespace === undefined ? known?.namespace : String(namespace),
      authorization: authorization === undefined ? known?.authorization : String(authorization),
      group: subscription?.getGroup()?.getName() ?? known?.group,
      topics: subscription
        ? subscription.getSubscriptionsList().map((e) => e.getTopic()?.getName() ?? '')
        : publishing
          ? publishing.getTopicsList().map((t) => t.getName())
          : (known?.topics ?? []),
      filters: subscription
        ? subscription.getSubscriptionsList().map((e) => ({
            topic: e.getTopic()?.getName() ?? '',
            type: e.getExpression()?.getType() === d.FilterType.SQL ? ('SQL' as const) : ('TAG' as const),
            expression: e.getExpression()?.getExpression() ?? '',
          }))
        : (known?.filters ?? []),
    });
  }

  #sendMessage(
    call: grpc.ServerUnaryCall<InstanceType<typeof s.SendMessageRequest>, unknown>,
    callback: grpc.sendUnaryData<unknown>,
  ): void {
    this.#remember(call.metadata);
    const response = new s.SendMessageResponse().setStatus(ok());
    for (const message of call.request.getMessagesList()) {
      const props = message.getSystemProperties();
      const topic = message.getTopic()?.getName() ?? '';
      const stored = this.#store({
        topic,
        messageId: props?.getMessageId() || this.#newMessageId(),
        body: Buffer.from(message.getBody_asU8()),
        keys: props?.getKeysList() ?? [],
        tag: props?.hasTag() ? props.getTag() : undefined,
        properties: Object.fromEntries(message.getUserPropertiesMap().toArray()),
        bornAt: props?.getBornTimestamp()?.toDate().getTime() ?? Date.now(),
        messageGroup: props?.hasMessageGroup() ? props.getMessageGroup() : undefined,
      });
      if (this.faults.duplicateSends > 0) {
        this.faults.duplicateSends--;
        this.#store({ ...stored, messageId: this.#newMessageId(), duplicateOf: stored.messageId });
      }
      response.addEntries(
        new s.SendResultEntry().setStatus(ok()).setMessageId(stored.messageId).setOffset(stored.offset),
      );
    }
    if (this.faults.loseSendResponses > 0) {
      this.faults.loseSendResponses--;
      callback({ code: grpc.status.UNAVAILABLE, details: 'test broker: send response lost (fault)' });
      return;
    }
    callback(null, response);
  }

  async #receiveMessage(
    call: grpc.ServerWritableStream<InstanceType<typeof s.ReceiveMessageRequest>, unknown>,
  ) {
    this.#remember(call.metadata);
    const request = call.request;
    const group = request.getGroup()?.getName() ?? '';
    const topic = request.getMessageQueue()?.getTopic()?.getName() ?? '';
    const filter = request.getFilterExpression();
    const batch = Math.max(1, request.getBatchSize());
    const invisibleMs = millis(request.getInvisibleDuration()) ?? 30_000;
    const pollMs = millis(request.getLongPollingTimeout()) ?? 20_000;
    const deadline = Date.now() + pollMs;
    let cancelled = false;
    call.on('cancelled', () => {
      cancelled = true;
    });
    let messages: Message[] = [];
    while (!cancelled && this.#serving) {
      messages = this.#take(group, topic, filter, batch, invisibleMs);
      if (messages.length > 0 || Date.now() >= deadline) break;
      await new Promise((r) => setTimeout(r, Math.min(20, Math.max(1, deadline - Date.now()))));
    }
    if (cancelled || !this.#serving) {
      // The client went away: what was taken stays invisible and comes back later, as after a lost response.
      return;
    }
    try {
      call.write(
        new s.ReceiveMessageResponse().setStatus(
          messages.length > 0 ? ok() : status(d.Code.MESSAGE_NOT_FOUND, 'no new message'),
        ),
      );
      for (const message of messages) call.write(new s.ReceiveMessageResponse().setMessage(message));
      call.write(
        new s.ReceiveMessageResponse().setDeliveryTimestamp(timestampPb.Timestamp.fromDate(new Date())),
      );
      call.end();
    } catch {
      // the client went away: the messages come back after their invisible time
    }
  }

  /** Takes up to `batch` visible messages for the group, making them invisible (one delivery each). */
  #take(
    group: string,
    topic: string,
    filter: InstanceType<typeof d.FilterExpression> | undefined,
    batch: number,
    invisibleMs: number,
  ): Message[] {
    const now = Date.now();
    const states = this.#groupState(group, topic);
    const taken: Message[] = [];
    for (const stored of this.#topics.get(topic) ?? []) {
      if (taken.length >= batch) break;
      if (!matches(filter, stored)) continue;
      let state = states.get(stored.offset);
      if (!state) {
        state = { status: 'ready', attempts: 0, visibleAt: 0 };
        states.set(stored.offset, state);
      }
      if (state.status === 'acked' || state.status === 'dead' || state.visibleAt > now) continue;
      if (state.attempts >= this.#options.maxDeliveryAttempts) {
        this.#kill(group, stored, state, state.attempts, 'maxDeliveryAttempts');
        continue;
      }
      state.attempts++;
      state.status = 'invisible';
      state.visibleAt = now + invisibleMs;
      state.handle = this.#newHandle({ group, topic, offset: stored.offset });
      this.#deliveries.push({
        group,
        topic,
        messageId: stored.messageId,
        keys: stored.keys,
        attempt: state.attempts,
        at: now,
        invisibleMs,
      });
      taken.push(this.#toProtobuf(stored, state, invisibleMs));
    }
    return taken;
  }

  #ackMessage(
    call: grpc.ServerUnaryCall<InstanceType<typeof s.AckMessageRequest>, unknown>,
    callback: grpc.sendUnaryData<unknown>,
  ): void {
    const group = call.request.getGroup()?.getName() ?? '';
    const response = new s.AckMessageResponse();
    const codes: Code[] = [];
    let drop = false;
    if (this.faults.dropAcks > 0) {
      this.faults.dropAcks--;
      drop = true;
    }
    for (const entry of call.request.getEntriesList()) {
      const found = this.#validHandle(entry.getReceiptHandle());
      const stored = found?.stored ?? this.#findMessage(entry.getMessageId());
      const code: Code = found ? d.Code.OK : d.Code.INVALID_RECEIPT_HANDLE;
      if (found && !drop) found.state.status = 'acked';
      this.#acks.push({
        group,
        messageId: entry.getMessageId(),
        keys: stored?.keys ?? [],
        at: Date.now(),
        applied: found !== undefined && !drop,
        code,
      });
      codes.push(code);
      response.addEntries(
        new s.AckMessageResultEntry()
          .setMessageId(entry.getMessageId())
          .setReceiptHandle(entry.getReceiptHandle())
          .setStatus(code === d.Code.OK ? ok() : status(code, 'the receipt handle is stale or expired')),
      );
    }
    const first = codes[0] ?? d.Code.OK;
    response.setStatus(
      codes.every((c) => c === d.Code.OK)
        ? ok()
        : codes.length === 1
          ? status(first, 'the receipt handle is stale or expired')
          : status(d.Code.MULTIPLE_RESULTS, 'some entries failed'),
    );
    if (this.faults.loseAckResponses > 0) {
      this.faults.loseAckResponses--;
      if (this.faults.ackResponseLoss === 'hang') {
        // Never answered: the client's deadline ends the call; an outage or close() frees it.
        this.#hungCalls.add(() =>
          callback({ code: grpc.status.UNAVAILABLE, details: 'test broker went away' }),
        );
        return;
      }
      callback({ code: grpc.status.UNAVAILABLE, details: 'test broker: ack response lost (fault)' });
      return;
    }
    callback(null, response);
  }

  #changeInvisibleDuration(request: InstanceType<typeof s.ChangeInvisibleDurationRequest>) {
    const group = request.getGroup()?.getName() ?? '';
    const durationMs = millis(request.getInvisibleDuration()) ?? 0;
    const found = this.#validHandle(request.getReceiptHandle());
    this.#changes.push({
      group,
      messageId: request.getMessageId(),
      durationMs,
      at: Date.now(),
      code: found ? d.Code.OK : d.Code.INVALID_RECEIPT_HANDLE,
    });
    if (!found) {
      return new s.ChangeInvisibleDurationResponse().setStatus(
        status(d.Code.INVALID_RECEIPT_HANDLE, 'the receipt handle is stale or expired'),
      );
    }
    found.state.visibleAt = Date.now() + durationMs;
    found.state.handle = this.#newHandle(found.ref);
    return new s.ChangeInvisibleDurationResponse().setStatus(ok()).setReceiptHandle(found.state.handle);
  }

  #forwardToDeadLetterQueue(request: InstanceType<typeof s.ForwardMessageToDeadLetterQueueRequest>) {
    const found = this.#validHandle(request.getReceiptHandle());
    if (!found) {
      return new s.ForwardMessageToDeadLetterQueueResponse().setStatus(
        status(d.Code.INVALID_RECEIPT_HANDLE, 'the receipt handle is stale or expired'),
      );
    }
    this.#kill(found.ref.group, found.stored, found.state, request.getDeliveryAttempt(), 'forwarded');
    return new s.ForwardMessageToDeadLetterQueueResponse().setStatus(ok());
  }

  // ---- state ----------------------------------------------------------------------------------

  #store(message: Omit<StoredMessage, 'offset' | 'storedAt'>): StoredMessage {
    let log = this.#topics.get(message.topic);
    if (!log) {
      log = [];
      this.#topics.set(message.topic, log);
    }
    const stored: StoredMessage = { ...message, offset: log.length, storedAt: Date.now() };
    log.push(stored);
    return stored;
  }

  #kill(
    group: string,
    stored: StoredMessage,
    state: DeliveryState,
    attempt: number,
    cause: DeadLetterRecord['cause'],
  ) {
    state.status = 'dead';
    state.handle = undefined;
    this.#deadLetters.push({
      group,
      dlqTopic: `%DLQ%${group}`,
      message: stored,
      deliveryAttempt: attempt,
      cause,
      at: Date.now(),
    });
  }

  #validHandle(handle: string) {
    const ref = this.#handles.get(handle);
    if (!ref) return undefined;
    const state = this.#groupState(ref.group, ref.topic).get(ref.offset);
    const stored = this.#topics.get(ref.topic)?.[ref.offset];
    if (!state || !stored || state.handle !== handle || state.status !== 'invisible') return undefined;
    if (state.visibleAt <= Date.now()) return undefined; // expired: the message is up for redelivery
    return { ref, state, stored };
  }

  #findMessage(messageId: string): StoredMessage | undefined {
    for (const messages of this.#topics.values()) {
      const found = messages.find((m) => m.messageId === messageId);
      if (found) return found;
    }
    return undefined;
  }

  #groupState(group: string, topic: string): Map<number, DeliveryState> {
    const key = `${group}\u0000${topic}`;
    let states = this.#groups.get(key);
    if (!states) {
      states = new Map();
      this.#groups.set(key, states);
    }
    return states;
  }

  #newHandle(ref: HandleRef): string {
    const handle = `rh-${ref.offset}-${randomBytes(8).toString('hex')}`;
    this.#handles.set(handle, ref);
    return handle;
  }

  #newMessageId(): string {
    this.#nextId++;
    return `01TEST${Date.now().toString(16).toUpperCase()}${this.#nextId.toString(16).toUpperCase().padStart(8, '0')}`;
  }

  #toProtobuf(stored: StoredMessage, state: DeliveryState, invisibleMs: number): Message {
    const props = new d.SystemProperties()
      .setMessageId(stored.messageId)
      .setKeysList([...stored.keys])
      .setBodyDigest(new d.Digest().setType(d.DigestType.CRC32).setChecksum(String(crc32(stored.body))))
      .setBodyEncoding(d.Encoding.IDENTITY)
      .setMessageType(stored.messageGroup ? d.MessageType.FIFO : d.MessageType.NORMAL)
      .setBornTimestamp(timestampPb.Timestamp.fromDate(new Date(stored.bornAt)))
      .setBornHost(HOST)
      .setStoreTimestamp(timestampPb.Timestamp.fromDate(new Date(stored.storedAt)))
      .setStoreHost(this.endpoints)
      .setReceiptHandle(state.handle ?? '')
      .setQueueId(0)
      .setQueueOffset(stored.offset)
      .setInvisibleDuration(duration(invisibleMs))
      .setDeliveryAttempt(state.attempts);
    if (stored.tag !== undefined) props.setTag(stored.tag);
    if (stored.messageGroup !== undefined) props.setMessageGroup(stored.messageGroup);
    const message = new d.Message()
      .setTopic(new d.Resource().setName(stored.topic))
      .setBody(new Uint8Array(stored.body))
      .setSystemProperties(props);
    const userProperties = message.getUserPropertiesMap();
    for (const [k, v] of Object.entries(stored.properties)) userProperties.set(k, v);
    return message;
  }
}

function matches(
  filter: InstanceType<typeof d.FilterExpression> | undefined,
  message: StoredMessage,
): boolean {
  if (!filter || filter.getType() !== d.FilterType.TAG) return true;
  const expression = filter.getExpression().trim();
  if (expression === '' || expression === '*') return true;
  const tags = expression.split('||').map((t) => t.trim());
  return message.tag !== undefined && tags.includes(message.tag);
}

function ok(): Status {
  return status(d.Code.OK, 'OK');
}

function status(code: Code, message: string): Status {
  return new d.Status().setCode(code).setMessage(message);
}

function duration(ms: number) {
  return new durationPb.Duration().setSeconds(Math.floor(ms / 1000)).setNanos((ms % 1000) * 1_000_000);
}

function millis(value: { getSeconds(): number; getNanos(): number } | undefined): number | undefined {
  return value ? value.getSeconds() * 1000 + Math.floor(value.getNanos() / 1_000_000) : undefined;
}

/**
 * Closes a gRPC server for good and resolves once its listening socket and every connection are closed:
 * `forceShutdown()` alone returns while the HTTP/2 server is still closing (its handle keeps the process
 * alive a little longer); `tryShutdown()` reports when it is done, and the forced cut makes that prompt.
 */
function shutDown(server: grpc.Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  server.forceShutdown();
  return closed;
}
