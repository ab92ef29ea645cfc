// Type-checked by `npm run lint` (never run): both clients' own types are accepted by
// createPatterns without casts, and the results carry the documented types.
import Redis, { Cluster } from "ioredis";
import { createClient, createCluster } from "redis";
import { createPatterns, PatternsError, type AllLimitsResult, type Entry, type Limit, type Job, type QueueStats, type RankResult, type RateLimitResult, type RWLockInfo } from "redis-patterns";

export async function typed(): Promise<void> {
  const io = await createPatterns(new Redis());
  const client = createClient();
  await client.connect();
  const nr = await createPatterns(client, { backend: "auto" });
  const backend: "module" | "twin" = nr.backend;
  const ioCluster = await createPatterns(new Cluster([{ host: "127.0.0.1", port: 7000 }]));
  const cluster = createCluster({ rootNodes: [{ url: "redis://127.0.0.1:7000" }] });
  await cluster.connect();
  const nrCluster = await createPatterns(cluster);
  const r: RateLimitResult = await io.tokenBucket("k", { capacity: 1, rate: 1 });
  const limits: Limit[] = [{ key: "a", tokenBucket: { capacity: 1, rate: 1 } }, { key: "b", slidingWindow: { limit: 1, windowMs: 1, exact: true } }];
  const all: AllLimitsResult = await nr.limitAll(limits);
  const denied: number | null = all.denied;
  const left: number[] = await io.refund([{ key: "c", fixedWindow: { limit: 1, windowMs: 1, cost: 2 } }]);
  const top: Entry[] = await io.leaderboard("b").top(3, { ranking: "dense", order: "asc" });
  const token: number | undefined = io.lock("l").token;
  const value: { n: number } = await nr.cache.getOrSet("c", async () => ({ n: 1 }), { ttlMs: 1000, tags: ["t"] });
  const data: Record<string, string> | null = await nr.sessions.get("s");
  const n: number = await io.withLock("l", { ttlMs: 1000 }, (lock) => lock.token ?? 0);
  const added: number = await io.leaderboard("b").add({ a: 1 });
  const ranks: RankResult[] = await io.leaderboard("b").add({ a: 1 }, { withRank: true, ranking: "dense" });
  const score: number = await io.leaderboard("b").incr("a", 2);
  const rank: RankResult = await io.leaderboard("b").incr("a", 2, { withRank: true });
  const rw = nr.rwlock("rw", { ttlMs: 1000, waitMs: Infinity });
  const granted: boolean = await rw.acquire("read");
  const wtoken: number = await rw.withWrite((lock) => lock.token ?? 0);
  const rwInfo: RWLockInfo | null = await nr.rwlockInfo("rw");
  const sid: string = await nr.sessions.create("i", { idleMs: 1, absoluteMs: 2, maxSessions: 3 });
  const e: PatternsError = new PatternsError("ERR x");
  const jobs: Job[] = await io.queue("q").pop("g", "c", { count: 2, blockMs: Infinity, leaseMs: 1000 });
  const stats: QueueStats = await nr.queue("q").stats("g");
  const worker = nr.queue("q").worker("g", "c", async (job: Job) => job.payload.length, { concurrency: 2 }).start();
  await worker.stop();
  const clustered: RateLimitResult[] = await Promise.all([ioCluster, nrCluster].map((p) => p.fixedWindow("k", { limit: 1, windowMs: 1 })));
  void [clustered, all.limits[0]?.headers(), denied, left, added, ranks, score, rank, granted, wtoken, rwInfo?.mode, sid, backend, r.headers(), top, token, value, data, n, e.code, jobs, stats.ready, worker.processed];
}
