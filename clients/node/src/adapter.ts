import { translateError } from "./errors";
import { slotOf } from "./slot";

/**
 * What the package needs from a client: send a command with string arguments, open a
 * dedicated connection like the caller's, and subscribe on one. One adapter per client, a
 * Cluster client's included.
 */
export interface Connection {
  readonly kind: "ioredis" | "node-redis";
  /**
   * Sends one command; server errors reject with PatternsError. keys are the command's declared
   * keys: a Cluster client sends it to the node of their slot, and refuses keys in several slots.
   */
  send(args: readonly string[], keys?: readonly string[]): Promise<unknown>;
  /** A connection to each primary: this one itself unless on a Cluster (setup: detection, the twin). */
  primaries(): Promise<Connection[]>;
  /** A new connection with the caller's options, ready to use. */
  duplicate(): Promise<Connection>;
  /** Subscribes a new connection to channel; resolves to a function that closes it. */
  subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>>;
  /** Closes this connection (only for connections the package opened). */
  close(): Promise<void>;
}

/** The part of ioredis's `Redis` the adapter uses. */
export interface IoredisLike {
  call(command: string, ...args: string[]): Promise<unknown>;
  duplicate(): IoredisLike;
  subscribe(channel: string): Promise<unknown>;
  on(event: "message", listener: (channel: string, message: string) => void): unknown;
  disconnect(): void;
  status?: string;
  connect?(): Promise<void>;
  options?: { keyPrefix?: string; enableAutoPipelining?: boolean };
  /** True on an ioredis `Cluster`. */
  isCluster?: boolean;
}

/** The part of ioredis's `Cluster` the adapter uses, beyond a client's. */
export interface IoredisClusterLike extends IoredisLike {
  nodes(role: "master"): IoredisLike[];
  sendCommand(command: unknown): unknown;
}

/** The part of node-redis's client (v4 and later) the adapter uses. */
export interface NodeRedisLike {
  sendCommand(args: string[]): Promise<unknown>;
  duplicate(): NodeRedisLike;
  connect(): Promise<unknown>;
  subscribe(channel: string, listener: (message: string) => void): Promise<unknown>;
  on(event: "error", listener: (err: Error) => void): unknown;
  isOpen?: boolean;
  destroy?(): void;
  disconnect?(): Promise<void>;
}

/** The part of node-redis's cluster client (`createCluster`, v4 and later) the adapter uses. */
export interface NodeRedisClusterLike {
  sendCommand(firstKey: string | undefined, isReadonly: boolean | undefined, args: string[]): Promise<unknown>;
  duplicate(): NodeRedisClusterLike;
  connect(): Promise<unknown>;
  subscribe(channel: string, listener: (message: string) => void): Promise<unknown>;
  on(event: "error", listener: (err: Error) => void): unknown;
  readonly masters: readonly unknown[];
  nodeClient(node: unknown): NodeRedisLike | Promise<NodeRedisLike>;
  destroy?(): void;
  disconnect?(): Promise<void>;
}

export type RedisClient = IoredisLike | NodeRedisLike | NodeRedisClusterLike;

function isIoredis(client: unknown): client is IoredisLike {
  return typeof (client as IoredisLike).call === "function" && typeof (client as IoredisLike).duplicate === "function";
}

function isIoredisCluster(client: IoredisLike): client is IoredisClusterLike {
  return client.isCluster === true;
}

function isNodeRedis(client: unknown): client is NodeRedisLike | NodeRedisClusterLike {
  return typeof (client as NodeRedisLike).sendCommand === "function" && typeof (client as NodeRedisLike).connect === "function";
}

function isNodeRedisCluster(client: NodeRedisLike | NodeRedisClusterLike): client is NodeRedisClusterLike {
  return typeof (client as NodeRedisClusterLike).nodeClient === "function";
}

async function guarded(reply: Promise<unknown>): Promise<unknown> {
  try {
    return await reply;
  } catch (err) {
    throw translateError(err);
  }
}

/**
 * Sends a command in the given slot on an ioredis Cluster. ioredis finds the keys of the
 * commands it knows only, and sends the others (the module's) to any node, which answers MOVED:
 * this sets the slot on the command ioredis builds, where ioredis keeps it for its own commands.
 */
function callInSlot(cluster: IoredisClusterLike, slot: number, args: readonly string[]): Promise<unknown> {
  const [command, ...rest] = args;
  const routed: IoredisClusterLike = Object.create(cluster, {
    // Outside auto-pipelines: they group commands by their first argument, not by this slot.
    options: { value: { ...cluster.options, enableAutoPipelining: false } },
    sendCommand: {
      value: (built: unknown) => {
        (built as { slot?: number }).slot = slot;
        return cluster.sendCommand(built);
      },
    },
  });
  return routed.call(command as string, ...rest);
}

class IoredisConnection implements Connection {
  readonly kind = "ioredis";
  constructor(private readonly client: IoredisLike) {}

  async send(args: readonly string[], keys: readonly string[] = []): Promise<unknown> {
    if (isIoredisCluster(this.client) && keys.length > 0) return guarded(callInSlot(this.client, slotOf(keys), args));
    const [command, ...rest] = args;
    return guarded(this.client.call(command as string, ...rest));
  }

  async primaries(): Promise<Connection[]> {
    if (!isIoredisCluster(this.client)) return [this];
    // A Cluster knows its nodes once ready; a command waits for that (connecting a lazy one).
    await guarded(this.client.call("PING"));
    return this.client.nodes("master").map((node) => new IoredisConnection(node));
  }

  async duplicate(): Promise<Connection> {
    const copy = this.client.duplicate();
    // A lazyConnect client's copies are lazy too; others connect by themselves.
    if (copy.status === "wait" && copy.connect) await copy.connect();
    return new IoredisConnection(copy);
  }

  async subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>> {
    const copy = (await this.duplicate()) as IoredisConnection;
    copy.client.on("message", (from, message) => {
      if (from === channel) onMessage(message);
    });
    await copy.client.subscribe(channel);
    return () => copy.close();
  }

  async close(): Promise<void> {
    this.client.disconnect();
  }
}

class NodeRedisConnection implements Connection {
  readonly kind = "node-redis";
  constructor(private readonly client: NodeRedisLike | NodeRedisClusterLike) {}

  async send(args: readonly string[], keys: readonly string[] = []): Promise<unknown> {
    if (!isNodeRedisCluster(this.client)) return guarded(this.client.sendCommand([...args]));
    // The cluster client routes by the key it is given (none: any node), to the primary.
    if (keys.length > 0) slotOf(keys);
    return guarded(this.client.sendCommand(keys[0], false, [...args]));
  }

  async primaries(): Promise<Connection[]> {
    const cluster = this.client;
    if (!isNodeRedisCluster(cluster)) return [this];
    const nodes = await Promise.all(cluster.masters.map((node) => cluster.nodeClient(node)));
    return nodes.map((node) => new NodeRedisConnection(node));
  }

  async duplicate(): Promise<Connection> {
    const copy = this.client.duplicate();
    // node-redis emits connection errors as events and crashes the process on an unhandled
    // one; commands on this connection still reject, which is where callers see them.
    copy.on("error", () => undefined);
    await copy.connect();
    return new NodeRedisConnection(copy);
  }

  async subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>> {
    const copy = (await this.duplicate()) as NodeRedisConnection;
    await copy.client.subscribe(channel, (message) => onMessage(message));
    return () => copy.close();
  }

  async close(): Promise<void> {
    if (this.client.destroy) this.client.destroy();
    else await this.client.disconnect?.();
  }
}

/** Wraps an ioredis or node-redis client. */
export function connectionFor(client: RedisClient): Connection {
  if (isIoredis(client)) {
    // ioredis adds keyPrefix to the keys of commands it knows (FCALL's) but not to the module's,
    // and keys the server returns (sessions) would be prefixed twice: one rule cannot hold.
    if (client.options?.keyPrefix) {
      throw new TypeError("redis-patterns cannot use an ioredis client with keyPrefix: put the prefix in the keys you pass");
    }
    return new IoredisConnection(client);
  }
  if (isNodeRedis(client)) return new NodeRedisConnection(client);
  throw new TypeError("redis-patterns needs an ioredis client or Cluster, or a connected node-redis client or cluster");
}
