/**
 * The test broker's gRPC `MessagingService`: one short handler per call rocketmq-client-nodejs makes,
 * each reading its request through the protobuf mapping, asking the broker state, and answering. The
 * faults that lose a response (`loseSendResponses`, `loseAckResponses`) are applied here.
 */
import * as grpc from '@grpc/grpc-js';
import type { BrokerState } from './broker-state.js';
import type { ResolvedBrokerOptions } from './options.js';
import { pbDefinition as d, MessagingServiceService, pbService as s } from './proto.js';
import {
  ackEntryStatus,
  ackStatus,
  type BrokerAddress,
  clientFromSettings,
  deliveredMessage,
  forbidden,
  incomingMessage,
  messageQueue,
  millis,
  noNewMessage,
  ok,
  permissionOf,
  sendRefused,
  settingsFor,
  staleHandle,
  tagExpression,
  timestamp,
  topicNotFound,
} from './protobuf-mapping.js';

type TelemetryCommand = InstanceType<typeof s.TelemetryCommand>;
type TelemetryCall = grpc.ServerDuplexStream<TelemetryCommand, TelemetryCommand>;
type Unary<Request> = grpc.ServerUnaryCall<Request, unknown>;

/** What the handlers work with; the lifecycle (`RocketMQTestBroker`) provides it. */
export interface ServiceContext {
  readonly state: BrokerState;
  readonly options: ResolvedBrokerOptions;
  readonly calls: OpenCalls;
  /** Where the broker listens now (a free port is known only once bound). */
  address(): BrokerAddress;
  /** False during an outage and after close: a long poll in progress gives up. */
  serving(): boolean;
}

/** The calls an outage must cut: open telemetry streams, and ack calls a fault left unanswered. */
export class OpenCalls {
  readonly #telemetry = new Set<TelemetryCall>();
  readonly #hung = new Set<() => void>();

  opened(call: TelemetryCall): void {
    this.#telemetry.add(call);
  }

  closed(call: TelemetryCall): void {
    this.#telemetry.delete(call);
  }

  /** Keeps a call unanswered until `cut()`, which calls `release`. */
  hang(release: () => void): void {
    this.#hung.add(release);
  }

  /** Answers every hung call (UNAVAILABLE) and ends every telemetry stream. */
  cut(): void {
    for (const release of this.#hung) release();
    this.#hung.clear();
    for (const call of this.#telemetry) {
      try {
        call.end();
      } catch {
        // already gone
      }
    }
    this.#telemetry.clear();
  }
}

/** Adds the MessagingService, served from `context`, to `server`. */
export function addMessagingService(server: grpc.Server, context: ServiceContext): void {
  const unimplemented = (_call: unknown, callback: grpc.sendUnaryData<never>) =>
    callback({ code: grpc.status.UNIMPLEMENTED, details: 'not implemented by the test broker' });
  server.addService(MessagingServiceService, {
    queryRoute: unary((call: Unary<InstanceType<typeof s.QueryRouteRequest>>) => queryRoute(context, call)),
    heartbeat: unary(() => new s.HeartbeatResponse().setStatus(ok())),
    notifyClientTermination: unary(() => new s.NotifyClientTerminationResponse().setStatus(ok())),
    queryAssignment: unary((call: Unary<InstanceType<typeof s.QueryAssignmentRequest>>) =>
      queryAssignment(context, call.request),
    ),
    endTransaction: unary(() => new s.EndTransactionResponse().setStatus(ok())),
    sendMessage: (
      call: Unary<InstanceType<typeof s.SendMessageRequest>>,
      callback: grpc.sendUnaryData<unknown>,
    ) => sendMessage(context, call, callback),
    receiveMessage: (
      call: grpc.ServerWritableStream<InstanceType<typeof s.ReceiveMessageRequest>, unknown>,
    ) => {
      void receiveMessage(context, call);
    },
    ackMessage: (
      call: Unary<InstanceType<typeof s.AckMessageRequest>>,
      callback: grpc.sendUnaryData<unknown>,
    ) => ackMessage(context, call, callback),
    changeInvisibleDuration: unary((call: Unary<InstanceType<typeof s.ChangeInvisibleDurationRequest>>) =>
      changeInvisibleDuration(context, call.request),
    ),
    forwardMessageToDeadLetterQueue: unary(
      (call: Unary<InstanceType<typeof s.ForwardMessageToDeadLetterQueueRequest>>) =>
        forwardMessageToDeadLetterQueue(context, call.request),
    ),
    telemetry: (call: TelemetryCall) => telemetry(context, call),
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
  });
}

// ---- the handlers, in the order a client meets them ------------------------------------------------

/** The topic's one queue, with the topic's perm; a dead-letter topic before its first letter is not found. */
function queryRoute(context: ServiceContext, call: Unary<InstanceType<typeof s.QueryRouteRequest>>) {
  remember(context, call.metadata);
  const topic = call.request.getTopic();
  const name = topic?.getName() ?? '';
  if (!context.state.topicExists(name)) return new s.QueryRouteResponse().setStatus(topicNotFound(name));
  return new s.QueryRouteResponse()
    .setStatus(ok())
    .setMessageQueuesList([
      messageQueue(
        name,
        context.address(),
        topic?.getResourceNamespace(),
        permissionOf(context.state.topicPerm(name)),
      ),
    ]);
}

/** The client's start-up waits for the settings answered here (`silentTelemetry`: never). */
function telemetry(context: ServiceContext, call: TelemetryCall): void {
  context.calls.opened(call);
  const metadata = call.metadata;
  call.on('data', (command: TelemetryCommand) => {
    const settings = command.getSettings();
    if (!settings) return;
    remember(context, metadata, settings);
    if (context.options.silentTelemetry) return;
    try {
      call.write(
        new s.TelemetryCommand().setStatus(ok()).setSettings(settingsFor(settings, context.options)),
      );
    } catch {
      // the client went away meanwhile
    }
  });
  call.on('end', () => {
    context.calls.closed(call);
    try {
      call.end();
    } catch {
      // already ended
    }
  });
  call.on('error', () => context.calls.closed(call));
}

function queryAssignment(context: ServiceContext, request: InstanceType<typeof s.QueryAssignmentRequest>) {
  const topic = request.getTopic()?.getName() ?? '';
  return new s.QueryAssignmentResponse()
    .setStatus(ok())
    .setAssignmentsList([new d.Assignment().setMessageQueue(messageQueue(topic, context.address()))]);
}

function sendMessage(
  context: ServiceContext,
  call: Unary<InstanceType<typeof s.SendMessageRequest>>,
  callback: grpc.sendUnaryData<unknown>,
): void {
  remember(context, call.metadata);
  const response = new s.SendMessageResponse().setStatus(ok());
  for (const message of call.request.getMessagesList()) {
    if (context.state.refusesSend()) {
      response.setStatus(sendRefused()).addEntries(new s.SendResultEntry().setStatus(sendRefused()));
      continue;
    }
    const stored = context.state.send(incomingMessage(message));
    response.addEntries(
      new s.SendResultEntry().setStatus(ok()).setMessageId(stored.messageId).setOffset(stored.offset),
    );
  }
  const faults = context.state.faults;
  if (faults.loseSendResponses > 0) {
    faults.loseSendResponses--;
    callback({ code: grpc.status.UNAVAILABLE, details: 'test broker: send response lost (fault)' });
    return;
  }
  callback(null, response);
}

/** A long poll: status, then the messages, then a delivery timestamp, as the client expects them. */
async function receiveMessage(
  context: ServiceContext,
  call: grpc.ServerWritableStream<InstanceType<typeof s.ReceiveMessageRequest>, unknown>,
): Promise<void> {
  remember(context, call.metadata);
  const request = call.request;
  const group = request.getGroup()?.getName() ?? '';
  const topic = request.getMessageQueue()?.getTopic()?.getName() ?? '';
  const tags = tagExpression(request.getFilterExpression());
  const batch = Math.max(1, request.getBatchSize());
  const invisibleMs = millis(request.getInvisibleDuration()) ?? 30_000;
  const pollMs = millis(request.getLongPollingTimeout()) ?? 20_000;
  const refusal = !context.state.topicExists(topic)
    ? topicNotFound(topic)
    : !context.state.readable(topic)
      ? // As the broker's PopMessageProcessor answers a topic without the read perm (NO_PERMISSION).
        forbidden(`the topic[${topic}] peeking message is forbidden`)
      : undefined;
  if (refusal) {
    try {
      call.write(new s.ReceiveMessageResponse().setStatus(refusal));
      call.end();
    } catch {
      // the client went away
    }
    return;
  }
  const deadline = Date.now() + pollMs;
  let cancelled = false;
  call.on('cancelled', () => {
    cancelled = true;
  });
  let messages: InstanceType<typeof d.Message>[] = [];
  while (!cancelled && context.serving()) {
    messages = context.state
      .take(group, topic, tags, batch, invisibleMs)
      .map((delivery) => deliveredMessage(delivery, context.address()));
    if (messages.length > 0 || Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, Math.min(20, Math.max(1, deadline - Date.now()))));
  }
  if (cancelled || !context.serving()) {
    // The client went away: what was taken stays invisible and comes back later, as after a lost response.
    return;
  }
  try {
    call.write(new s.ReceiveMessageResponse().setStatus(messages.length > 0 ? ok() : noNewMessage()));
    for (const message of messages) call.write(new s.ReceiveMessageResponse().setMessage(message));
    call.write(new s.ReceiveMessageResponse().setDeliveryTimestamp(timestamp(new Date())));
    call.end();
  } catch {
    // the client went away: the messages come back after their invisible time
  }
}

function ackMessage(
  context: ServiceContext,
  call: Unary<InstanceType<typeof s.AckMessageRequest>>,
  callback: grpc.sendUnaryData<unknown>,
): void {
  const group = call.request.getGroup()?.getName() ?? '';
  const entries = call.request.getEntriesList();
  const codes = context.state.ack(
    group,
    entries.map((e) => ({ messageId: e.getMessageId(), receiptHandle: e.getReceiptHandle() })),
  );
  const response = new s.AckMessageResponse().setStatus(ackStatus(codes));
  for (const [i, entry] of entries.entries()) {
    response.addEntries(
      new s.AckMessageResultEntry()
        .setMessageId(entry.getMessageId())
        .setReceiptHandle(entry.getReceiptHandle())
        .setStatus(ackEntryStatus(codes[i] ?? d.Code.OK)),
    );
  }
  const faults = context.state.faults;
  if (faults.loseAckResponses > 0) {
    faults.loseAckResponses--;
    if (faults.ackResponseLoss === 'hang') {
      // Never answered: the client's deadline ends the call; an outage or close() frees it.
      context.calls.hang(() => callback({ code: grpc.status.UNAVAILABLE, details: 'test broker went away' }));
      return;
    }
    callback({ code: grpc.status.UNAVAILABLE, details: 'test broker: ack response lost (fault)' });
    return;
  }
  callback(null, response);
}

function changeInvisibleDuration(
  context: ServiceContext,
  request: InstanceType<typeof s.ChangeInvisibleDurationRequest>,
) {
  const handle = context.state.changeInvisibleDuration(
    request.getGroup()?.getName() ?? '',
    request.getMessageId(),
    request.getReceiptHandle(),
    millis(request.getInvisibleDuration()) ?? 0,
  );
  const response = new s.ChangeInvisibleDurationResponse();
  return handle === undefined
    ? response.setStatus(staleHandle())
    : response.setStatus(ok()).setReceiptHandle(handle);
}

function forwardMessageToDeadLetterQueue(
  context: ServiceContext,
  request: InstanceType<typeof s.ForwardMessageToDeadLetterQueueRequest>,
) {
  const forwarded = context.state.forwardToDeadLetter(
    request.getReceiptHandle(),
    request.getDeliveryAttempt(),
  );
  return new s.ForwardMessageToDeadLetterQueueResponse().setStatus(forwarded ? ok() : staleHandle());
}

// ---- helpers ---------------------------------------------------------------------------------------

/** Records the calling client: its id, namespace and signature from the headers, the rest from settings. */
function remember(
  context: ServiceContext,
  metadata: grpc.Metadata,
  settings?: InstanceType<typeof d.Settings>,
): void {
  const clientId = String(metadata.get('x-mq-client-id')[0] ?? '');
  if (!clientId) return;
  const namespace = metadata.get('x-mq-namespace')[0];
  const authorization = metadata.get('authorization')[0];
  context.state.sawClient({
    clientId,
    namespace: namespace === undefined ? undefined : String(namespace),
    authorization: authorization === undefined ? undefined : String(authorization),
    ...clientFromSettings(settings),
  });
}

/** A unary handler from a function that answers the request; a throw answers INTERNAL. */
function unary<Request>(answer: (call: Unary<Request>) => unknown) {
  return (call: Unary<Request>, callback: grpc.sendUnaryData<unknown>) => {
    try {
      callback(null, answer(call));
    } catch (error) {
      callback({ code: grpc.status.INTERNAL, details: String(error) });
    }
  };
}
