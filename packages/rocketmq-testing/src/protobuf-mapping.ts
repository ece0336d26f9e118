/**
 * The broker's records ↔ the protobuf messages rocketmq-client-nodejs generated: what a request says,
 * in the broker state's terms, and the messages, routes, settings and statuses the broker answers with.
 */
import { crc32 } from 'node:zlib';
import durationPb from 'google-protobuf/google/protobuf/duration_pb.js';
import timestampPb from 'google-protobuf/google/protobuf/timestamp_pb.js';
import type { ClientSighting, Delivery, IncomingMessage } from './broker-state.js';
import type { ResolvedBrokerOptions } from './options.js';
import { pbDefinition as d } from './proto.js';
import type { TopicPerm } from './records.js';

type Message = InstanceType<typeof d.Message>;
type Settings = InstanceType<typeof d.Settings>;
type Status = InstanceType<typeof d.Status>;
type Code = (typeof d.Code)[keyof typeof d.Code];

/** Where the broker listens: routes point there, and delivered messages name it as their store host. */
export interface BrokerAddress {
  readonly host: string;
  readonly port: number;
}

const STALE_HANDLE = 'the receipt handle is stale or expired';

// ---- requests → the broker's terms -----------------------------------------------------------------

/** A sent message as the broker stores it (no id when the client gave none). */
export function incomingMessage(message: Message): IncomingMessage {
  const props = message.getSystemProperties();
  return {
    topic: message.getTopic()?.getName() ?? '',
    messageId: props?.getMessageId() || undefined,
    body: Buffer.from(message.getBody_asU8()),
    keys: props?.getKeysList() ?? [],
    tag: props?.hasTag() ? props.getTag() : undefined,
    properties: Object.fromEntries(message.getUserPropertiesMap().toArray()),
    bornAt: props?.getBornTimestamp()?.toDate().getTime() ?? Date.now(),
    messageGroup: props?.hasMessageGroup() ? props.getMessageGroup() : undefined,
  };
}

/** The tag expression a receive filters on; undefined for no filter or an SQL92 one (not evaluated). */
export function tagExpression(
  filter: InstanceType<typeof d.FilterExpression> | undefined,
): string | undefined {
  return filter?.getType() === d.FilterType.TAG ? filter.getExpression() : undefined;
}

/** What a client's settings say about it (its type, group, topics and filters); nothing without them. */
export function clientFromSettings(settings: Settings | undefined): Omit<ClientSighting, 'clientId'> {
  if (!settings) return {};
  const clientType = settings.getClientType();
  const subscription = settings.getSubscription();
  const publishing = settings.getPublishing();
  return {
    clientType: Object.entries(d.ClientType).find(([, v]) => v === clientType)?.[0] ?? String(clientType),
    group: subscription?.getGroup()?.getName(),
    topics: subscription
      ? subscription.getSubscriptionsList().map((e) => e.getTopic()?.getName() ?? '')
      : publishing
        ? publishing.getTopicsList().map((t) => t.getName())
        : undefined,
    filters: subscription
      ? subscription.getSubscriptionsList().map((e) => ({
          topic: e.getTopic()?.getName() ?? '',
          type: e.getExpression()?.getType() === d.FilterType.SQL ? ('SQL' as const) : ('TAG' as const),
          expression: e.getExpression()?.getExpression() ?? '',
        }))
      : undefined,
  };
}

export function millis(value: { getSeconds(): number; getNanos(): number } | undefined): number | undefined {
  return value ? value.getSeconds() * 1000 + Math.floor(value.getNanos() / 1_000_000) : undefined;
}

// ---- the broker's terms → responses ----------------------------------------------------------------

/** A delivery as the client receives it: receipt handle, attempt, and a CRC32 body digest it checks. */
export function deliveredMessage(delivery: Delivery, address: BrokerAddress): Message {
  const stored = delivery.message;
  const props = new d.SystemProperties()
    .setMessageId(stored.messageId)
    .setKeysList([...stored.keys])
    .setBodyDigest(new d.Digest().setType(d.DigestType.CRC32).setChecksum(String(crc32(stored.body))))
    .setBodyEncoding(d.Encoding.IDENTITY)
    .setMessageType(stored.messageGroup ? d.MessageType.FIFO : d.MessageType.NORMAL)
    .setBornTimestamp(timestampPb.Timestamp.fromDate(new Date(stored.bornAt)))
    .setBornHost(address.host)
    .setStoreTimestamp(timestampPb.Timestamp.fromDate(new Date(stored.storedAt)))
    .setStoreHost(`${address.host}:${address.port}`)
    .setReceiptHandle(delivery.receiptHandle)
    .setQueueId(0)
    .setQueueOffset(stored.offset)
    .setInvisibleDuration(duration(delivery.invisibleMs))
    .setDeliveryAttempt(delivery.attempt);
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

/**
 * The topic's one queue (id 0: the client routes only to queue 0), served by the broker itself, with
 * the topic's permission (READ_WRITE unless its perm says otherwise).
 */
export function messageQueue(
  topic: string,
  address: BrokerAddress,
  namespace = '',
  permission: (typeof d.Permission)[keyof typeof d.Permission] = d.Permission.READ_WRITE,
) {
  return new d.MessageQueue()
    .setTopic(new d.Resource().setName(topic).setResourceNamespace(namespace))
    .setId(0)
    .setPermission(permission)
    .setBroker(
      new d.Broker()
        .setName('test-broker')
        .setId(0)
        .setEndpoints(
          new d.Endpoints()
            .setScheme(d.AddressScheme.IPV4)
            .setAddressesList([new d.Address().setHost(address.host).setPort(address.port)]),
        ),
    )
    .setAcceptMessageTypesList([d.MessageType.NORMAL, d.MessageType.FIFO, d.MessageType.DELAY]);
}

/** A topic perm as a route's queue permission, as the proxy maps it (2 WRITE, 4 READ, 6 READ_WRITE). */
export function permissionOf(perm: TopicPerm) {
  if (perm === 6) return d.Permission.READ_WRITE;
  return perm === 4 ? d.Permission.READ : d.Permission.WRITE;
}

/**
 * The settings answered to a client's: an exponential backoff policy (the client needs one), and
 * `max_body_size` for producers, `receive_batch_size` for consumers (0 would fail every call).
 */
export function settingsFor(client: Settings, options: ResolvedBrokerOptions): Settings {
  // The group's own attempts, as the proxy merges the subscription group's retryMaxTimes + 1 in.
  const group = client.getSubscription()?.getGroup()?.getName();
  const maxAttempts =
    (group !== undefined ? options.groupMaxDeliveryAttempts[group] : undefined) ??
    options.maxDeliveryAttempts;
  const backoff = new d.RetryPolicy()
    .setMaxAttempts(maxAttempts)
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
        .setMaxBodySize(options.maxBodySize)
        .setValidateMessageType(true),
    );
  }
  const subscription = client.getSubscription();
  if (subscription) {
    const answer = new d.Subscription()
      .setSubscriptionsList(subscription.getSubscriptionsList())
      .setFifo(false)
      .setReceiveBatchSize(options.receiveBatchSize)
      .setLongPollingTimeout(subscription.getLongPollingTimeout() ?? duration(30_000));
    const group = subscription.getGroup();
    if (group) answer.setGroup(group);
    settings.setSubscription(answer);
  }
  return settings;
}

/** An ack's status: OK, the one entry's code, or MULTIPLE_RESULTS when some of several failed. */
export function ackStatus(codes: readonly number[]): Status {
  if (codes.every((c) => c === d.Code.OK)) return ok();
  return codes.length === 1
    ? status(codes[0] as Code, STALE_HANDLE)
    : status(d.Code.MULTIPLE_RESULTS, 'some entries failed');
}

/** An ack entry's status, from the code the broker state gave it. */
export function ackEntryStatus(code: number): Status {
  return code === d.Code.OK ? ok() : status(code as Code, STALE_HANDLE);
}

export function staleHandle(): Status {
  return status(d.Code.INVALID_RECEIPT_HANDLE, STALE_HANDLE);
}

export function topicNotFound(topic: string): Status {
  return status(d.Code.TOPIC_NOT_FOUND, `topic ${topic} does not exist`);
}

export function forbidden(message: string): Status {
  return status(d.Code.FORBIDDEN, message);
}

export function sendRefused(): Status {
  return status(d.Code.INTERNAL_SERVER_ERROR, 'test broker: send refused, nothing stored (fault)');
}

export function noNewMessage(): Status {
  return status(d.Code.MESSAGE_NOT_FOUND, 'no new message');
}

export function ok(): Status {
  return status(d.Code.OK, 'OK');
}

function status(code: Code, message: string): Status {
  return new d.Status().setCode(code).setMessage(message);
}

function duration(ms: number) {
  return new durationPb.Duration().setSeconds(Math.floor(ms / 1000)).setNanos((ms % 1000) * 1_000_000);
}

export function timestamp(date: Date) {
  return timestampPb.Timestamp.fromDate(date);
}
