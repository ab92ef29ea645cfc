import { connectionFor, type Connection, type RedisClient } from "./adapter";
import { blocksCall, ensureTwin, hasModule, type Backend, type Call } from "./backend";
import { Cache, jsonSerializer, type Serializer } from "./cache";
import { PatternsError } from "./errors";
import { Leaderboard } from "./leaderboard";
import { fencedHset, Lock, lockInfo, RWLock, rwlockInfo, Semaphore, withLock, type LockInfo, type LockOptions, type RWLockInfo, type SemaphoreOptions } from "./lock";
import {
  fromAll,
  fromRl,
  fromThrottle,
  limitBlock,
  limitCall,
  throttleArgs,
  type AllLimitsResult,
  type FixedWindowOptions,
  type Limit,
  type RateLimitResult,
  type SlidingWindowOptions,
  type ThrottleOptions,
  type TokenBucketOptions,
} from "./ratelimit";
import { Queue } from "./queue";
import { send, type Runner } from "./runner";
import { Sessions } from "./sessions";

export { PatternsError, LockNotAcquiredError } from "./errors";
export { expressRateLimit, fastifyRateLimit, type RateLimitMiddlewareOptions } from "./middleware";
export { jsonSerializer, INVALIDATE_CHANNEL, type Cache, type Serializer, type CacheSetOptions, type GetOrSetOptions } from "./cache";
export type { Leaderboard, Entry, Order, Ranking, RankOptions, RankResult, TopOptions, WithRankOptions } from "./leaderboard";
export type { Lock, RWLock, RWLockInfo, RWLockMode, Semaphore, LockInfo, LockOptions, SemaphoreOptions } from "./lock";
export type { Sessions, SessionData, CreateSessionOptions } from "./sessions";
export type { Queue, Worker, Job, QueueStats, PushOptions, PopOptions, WorkerOptions } from "./queue";
export type { AllLimitsResult, Limit, RateLimitResult, TokenBucketOptions, FixedWindowOptions, SlidingWindowOptions, ThrottleOptions } from "./ratelimit";
export type { Backend } from "./backend";
export type { RedisClient, IoredisLike, IoredisClusterLike, NodeRedisLike, NodeRedisClusterLike } from "./adapter";
export { TWIN_PATH } from "./backend";

export interface PatternsOptions {
  /** "auto" (default) uses the module when the server has it, else loads the Lua twin. */
  backend?: "auto" | Backend;
  /** How the cache stores values; default JSON. */
  serializer?: Serializer;
  /** Called when a background cache refresh fails; default: a process warning. */
  onRefreshError?: (err: unknown) => void;
}

/** redis-patterns over one ioredis or node-redis client. Create it with `createPatterns`. */
export class Patterns implements Runner {
  readonly cache: Cache;
  readonly sessions: Sessions;
  private readonly idle: Connection[] = [];
  private readonly opened = new Set<Connection>();
  private readonly subscriptions = new Set<() => Promise<void>>();
  private readonly background = new Set<Promise<unknown>>();

  constructor(
    private readonly conn: Connection,
    /** "module" or "twin": what the commands run on. */
    readonly backend: Backend,
    options: PatternsOptions = {},
  ) {
    const onRefreshError = options.onRefreshError ?? ((err: unknown) => process.emitWarning(err as Error));
    this.cache = new Cache(this, options.serializer ?? jsonSerializer, onRefreshError);
    this.sessions = new Sessions(this);
  }

  /** @internal */
  run(call: Call): Promise<unknown> {
    return send(this.conn, this.backend, call);
  }

  /** @internal Dedicated connections are pooled: one per concurrent blocking call. */
  async blocking<T>(fn: (conn: Connection) => Promise<T>): Promise<T> {
    const conn = this.idle.pop() ?? (await this.open());
    let healthy = true;
    try {
      return await fn(conn);
    } catch (err) {
      healthy = err instanceof PatternsError;
      throw err;
    } finally {
      if (healthy) this.idle.push(conn);
      else await this.discard(conn);
    }
  }

  /** @internal */
  async subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>> {
    const close = await this.conn.subscribe(channel, onMessage);
    const unsubscribe = async () => {
      if (this.subscriptions.delete(unsubscribe)) await close();
    };
    this.subscriptions.add(unsubscribe);
    return unsubscribe;
  }

  /** @internal */
  track(work: Promise<unknown>): void {
    const settled = work.finally(() => this.background.delete(settled));
    this.background.add(settled);
  }

  // Rate limiting

  /** Token bucket (GCRA): capacity tokens, refilled at rate per periodMs. */
  async tokenBucket(key: string, options: TokenBucketOptions): Promise<RateLimitResult> {
    return fromRl(await this.run(limitCall({ key, tokenBucket: options })));
  }

  /** Fixed window: at most limit per windowMs, windows aligned to the Unix epoch. */
  async fixedWindow(key: string, options: FixedWindowOptions): Promise<RateLimitResult> {
    return fromRl(await this.run(limitCall({ key, fixedWindow: options })));
  }

  /** Sliding window: weighted two-window estimate, or with `exact` a log of admissions. */
  async slidingWindow(key: string, options: SlidingWindowOptions): Promise<RateLimitResult> {
    return fromRl(await this.run(limitCall({ key, slidingWindow: options })));
  }

  /** RL.ALL: every limit admits and consumes its cost, or none consumes anything (one atomic decision). */
  async limitAll(limits: readonly Limit[]): Promise<AllLimitsResult> {
    return fromAll(await this.run(blocksCall("RL.ALL", limits.map(limitBlock))));
  }

  /** RL.REFUND: gives each limit its cost back, never past full; resolves to each one's remaining. */
  async refund(limits: readonly Limit[]): Promise<number[]> {
    const remaining = (await this.run(blocksCall("RL.REFUND", limits.map(limitBlock)))) as unknown[];
    return remaining.map(Number);
  }

  /** redis-cell's CL.THROTTLE (times are whole seconds, reported here in ms). */
  async throttle(key: string, options: ThrottleOptions): Promise<RateLimitResult> {
    return fromThrottle(await this.run({ command: "CL.THROTTLE", keys: [key], args: throttleArgs(options) }));
  }

  // Locks and semaphores

  /** A lock object: `acquire()`, `release()`, `extend()`, `token`, `lost`. */
  lock(key: string, options: LockOptions = {}): Lock {
    return new Lock(this, key, options);
  }

  /** Runs fn holding the lock and releases it in `finally`; rejects with LockNotAcquiredError when not granted. */
  withLock<T>(key: string, options: LockOptions, fn: (lock: Lock) => Promise<T> | T): Promise<T> {
    return withLock(this, key, options, fn);
  }

  /** Who holds the lock, or null when it is free. */
  lockInfo(key: string): Promise<LockInfo | null> {
    return lockInfo(this, key);
  }

  /** A read/write lock object: `acquire("read" | "write")`, `release()`, `extend()`, `info()`, `withRead()`, `withWrite()`. */
  rwlock(key: string, options: LockOptions = {}): RWLock {
    return new RWLock(this, key, options);
  }

  /** Who holds the read/write lock (its mode, writer, readers), or null when it is free. */
  rwlockInfo(key: string): Promise<RWLockInfo | null> {
    return rwlockInfo(this, key);
  }

  /** A counting semaphore of `limit` permits. */
  semaphore(key: string, options: SemaphoreOptions): Semaphore {
    return new Semaphore(this, key, options);
  }

  /** Sets fields of the resource hash unless a newer token wrote it. Resolves to whether it wrote. */
  fencedHset(resource: string, token: number, fields: Record<string, string | number>): Promise<boolean> {
    return fencedHset(this, resource, token, fields);
  }

  // Leaderboards

  leaderboard(key: string): Leaderboard {
    return new Leaderboard(this, key);
  }

  // Queues

  /** The job queue stored at `name` (a stream, with its derived keys). */
  queue(name: string): Queue {
    return new Queue(this, name);
  }

  /**
   * Waits for background cache refreshes, then closes the connections this object opened
   * (blocking waits, subscriptions). The client passed to createPatterns stays open.
   */
  async close(): Promise<void> {
    await Promise.allSettled([...this.background]);
    await Promise.all([...this.subscriptions].map((unsubscribe) => unsubscribe()));
    await Promise.all([...this.opened].map((conn) => this.discard(conn)));
    this.idle.length = 0;
  }

  private async open(): Promise<Connection> {
    const conn = await this.conn.duplicate();
    this.opened.add(conn);
    return conn;
  }

  private async discard(conn: Connection): Promise<void> {
    this.opened.delete(conn);
    await conn.close();
  }
}

/**
 * Wraps an ioredis client or Cluster, or a connected node-redis client or cluster. With backend
 * "auto" it uses the module when the server (on a Cluster: every primary) has it, else loads
 * the bundled Lua twin (FUNCTION LOAD, on every primary whose copy is missing or differs) and
 * calls it with FCALL.
 */
export async function createPatterns(client: RedisClient, options: PatternsOptions = {}): Promise<Patterns> {
  const conn = connectionFor(client);
  const primaries = await conn.primaries();
  const wanted = options.backend ?? "auto";
  let backend: Backend;
  if (wanted === "auto") backend = (await withoutModule(primaries)) === 0 ? "module" : "twin";
  else backend = wanted;
  if (backend === "twin") await Promise.all(primaries.map(ensureTwin));
  else if (wanted === "module") {
    const missing = await withoutModule(primaries);
    if (missing > 0) {
      const where = primaries.length > 1 ? `${missing} of the ${primaries.length} primaries` : "this server";
      throw new Error(`the redis-patterns module is not loaded on ${where} (backend: "module")`);
    }
  }
  return new Patterns(conn, backend, options);
}

/** How many of the servers lack the module (on a Cluster partly loaded, "auto" takes the twin). */
async function withoutModule(servers: readonly Connection[]): Promise<number> {
  const loaded = await Promise.all(servers.map(hasModule));
  return loaded.filter((has) => !has).length;
}
