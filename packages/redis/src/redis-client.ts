/** The ioredis clients the adapters accept, and how their failures are told apart. */
import type { Cluster, Redis } from 'ioredis';

/** A user's existing ioredis client: a single node (or a Sentinel-managed one) or a Cluster. */
export type RedisClient = Redis | Cluster;

/**
 * Server replies that mean "not now" rather than "no": the node is loading its data, the cluster is
 * down or resharding, a failover is under way.
 */
const UNAVAILABLE_REPLY = /^(LOADING|CLUSTERDOWN|TRYAGAIN|MASTERDOWN|BUSY|NOREPLICAS|READONLY)\b/;

/**
 * True when an error from an ioredis call means Redis could not be reached (closed connection, retries
 * exhausted, timeout, a node in failover). A reply error such as WRONGTYPE is an answer, not an outage.
 */
export function isUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error.name === 'ReplyError') return UNAVAILABLE_REPLY.test(error.message);
  return true;
}

/** Narrows to a Cluster: `isCluster` is typed as a plain boolean on both classes. */
export function isCluster(client: RedisClient): client is Cluster {
  return client.isCluster;
}
