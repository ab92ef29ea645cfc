import type { Call } from "./backend";
import { randomDraw, randomId, sleep, type Runner } from "./runner";

/** How values become the strings the cache stores. Default: JSON. */
export interface Serializer {
  serialize(value: unknown): string;
  deserialize(text: string): unknown;
}

export const jsonSerializer: Serializer = {
  serialize(value) {
    const text = JSON.stringify(value);
    if (typeof text !== "string") throw new TypeError("the JSON serializer cannot store undefined, a function or a symbol");
    return text;
  },
  deserialize: (text) => JSON.parse(text),
};

export interface CacheSetOptions {
  /** How long the value is fresh. */
  ttlMs: number;
  /** How long computing it takes, for XFetch's early refresh (getOrSet measures it when omitted). */
  deltaMs?: number;
  /** How long it may be served stale after ttlMs while one caller recomputes. */
  graceMs?: number;
  /** Tags to list the key under (in Cluster, in the key's slot). */
  tags?: readonly string[];
}

export interface GetOrSetOptions extends CacheSetOptions {
  /** XFetch's beta, default 1; 0 turns early refresh off. */
  beta?: number;
  /** How long this caller's lease to compute lasts, default 10000 ms (at most 60000). */
  leaseMs?: number;
}

/** The channel CACHE.INVALIDATE publishes each invalidated tag on. */
export const INVALIDATE_CHANNEL = "patterns:invalidate";

type State = "HIT" | "REFRESH" | "MISS" | "STALE" | "WAIT";

/** Tagged caching with stampede protection (XFetch and leases). */
export class Cache {
  constructor(
    private readonly runner: Runner,
    private readonly serializer: Serializer,
    private readonly onRefreshError: (err: unknown) => void,
  ) {}

  /**
   * The cached value, or compute() cached: on a miss exactly one caller computes while the
   * others wait (or are served the stale value within its grace); a caller XFetch picks for an
   * early refresh is served the value at once and recomputes in the background.
   */
  async getOrSet<T>(key: string, compute: () => T | Promise<T>, options: GetOrSetOptions): Promise<T> {
    for (;;) {
      const [state, value, extra] = await this.read(key, options);
      switch (state) {
        case "HIT":
        case "STALE":
          return this.serializer.deserialize(value as string) as T;
        case "REFRESH":
          this.runner.track(this.fill(key, String(extra), compute, options).catch(this.onRefreshError));
          return this.serializer.deserialize(value as string) as T;
        case "MISS":
          return this.fill(key, String(extra), compute, options);
        case "WAIT":
          await sleep(Number(extra));
      }
    }
  }

  /** Caches value for ttlMs (voiding any lease) and lists key under the tags, atomically. */
  async set(key: string, value: unknown, options: CacheSetOptions): Promise<void> {
    await this.runner.run({
      command: "CACHE.SET",
      keys: [key],
      args: [this.serializer.serialize(value), ...entryArgs(options)],
      tags: options.tags ?? [],
    });
  }

  /**
   * The cached value (fresh or within its grace), else undefined. It never computes; as every
   * CACHE.GET, a miss takes a lease, here of 1 ms, so it cannot hold up other callers.
   */
  async get<T = unknown>(key: string): Promise<T | undefined> {
    const [state, value] = await this.read(key, { beta: 0, leaseMs: 1 });
    if (state === "MISS" || state === "WAIT") return undefined;
    return this.serializer.deserialize(value as string) as T;
  }

  /** Lists a cached key under more tags. Resolves to the number newly attached. */
  async tag(key: string, ...tags: string[]): Promise<number> {
    return Number(await this.runner.run({ command: "CACHE.TAG", keys: [key, ...tags] }));
  }

  /** Deletes every key listed under the tags. Resolves to the number of keys deleted. */
  async invalidate(...tags: string[]): Promise<number> {
    return Number(await this.runner.run({ command: "CACHE.INVALIDATE", keys: tags }));
  }

  /** Calls callback(tag) for every tag invalidated on the server. Resolves to an unsubscribe function. */
  onInvalidate(callback: (tag: string) => void): Promise<() => Promise<void>> {
    return this.runner.subscribe(INVALIDATE_CHANNEL, callback);
  }

  private async read(key: string, options: { beta?: number; leaseMs?: number }): Promise<[State, unknown, unknown]> {
    const args: string[] = [];
    if (options.beta !== undefined) args.push("BETA", String(options.beta));
    if (options.leaseMs !== undefined) args.push("LEASE", String(options.leaseMs));
    const call: Call = { command: "CACHE.GET", keys: [key], args, twinLead: [randomDraw(), randomId()] };
    return (await this.runner.run(call)) as [State, unknown, unknown];
  }

  /** Computes the value and fills it with the lease (a fill whose lease was voided writes nothing). */
  private async fill<T>(key: string, lease: string, compute: () => T | Promise<T>, options: CacheSetOptions): Promise<T> {
    const started = performance.now();
    const value = await compute();
    const deltaMs = options.deltaMs ?? Math.round(performance.now() - started);
    await this.runner.run({
      command: "CACHE.FILL",
      keys: [key],
      args: [lease, this.serializer.serialize(value), ...entryArgs({ ...options, deltaMs })],
      tags: options.tags ?? [],
    });
    return value;
  }
}

function entryArgs(options: CacheSetOptions): string[] {
  const args = [String(options.ttlMs)];
  if (options.deltaMs !== undefined) args.push("DELTA", String(options.deltaMs));
  if (options.graceMs !== undefined) args.push("GRACE", String(options.graceMs));
  return args;
}
