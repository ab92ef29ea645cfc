import { translateError } from "./errors";

/**
 * What the package needs from a client: send a command with string arguments, open a
 * dedicated connection like the caller's, and subscribe on one. One adapter per client.
 */
export interface Connection {
  readonly kind: "ioredis" | "node-redis";
  /** Sends one command; server errors reject with PatternsError. */
  send(args: readonly string[]): Promise<unknown>;
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
  options?: { keyPrefix?: string };
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

export type RedisClient = IoredisLike | NodeRedisLike;

function isIoredis(client: unknown): client is IoredisLike {
  return typeof (client as IoredisLike).call === "function" && typeof (client as IoredisLike).duplicate === "function";
}

function isNodeRedis(client: unknown): client is NodeRedisLike {
  return typeof (client as NodeRedisLike).sendCommand === "function" && typeof (client as NodeRedisLike).connect === "function";
}

async function guarded(reply: Promise<unknown>): Promise<unknown> {
  try {
    return await reply;
  } catch (err) {
    throw translateError(err);
  }
}

class IoredisConnection implements Connection {
  readonly kind = "ioredis";
  constructor(private readonly client: IoredisLike) {}

  send(args: readonly string[]): Promise<unknown> {
    const [command, ...rest] = args;
    return guarded(this.client.call(command as string, ...rest));
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
  constructor(private readonly client: NodeRedisLike) {}

  send(args: readonly string[]): Promise<unknown> {
    return guarded(this.client.sendCommand([...args]));
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
  throw new TypeError("redis-patterns needs an ioredis client or a connected node-redis client");
}
