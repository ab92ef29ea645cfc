// A Redis Cluster of three primaries (Redis 7.0), with the module on every node and without it
// (the twin, loaded on every primary), through ioredis's Cluster and node-redis's createCluster:
// each call goes to its key's node (no MOVED answered), multi-key calls across slots are refused
// naming the slots, and what needs a dedicated connection (lock, semaphore and queue waits, a
// worker's pops, invalidation messages) works on a Cluster client's.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const Redis = require("ioredis");
const { createCluster } = require("redis");
const { startCluster, waitUntil, sleep, raw, modulePath } = require("./servers");
const { createPatterns, PatternsError, TWIN_PATH } = require("..");
const { keySlot } = require("../dist/slot");

const ioredisCluster = (Cluster, options = {}) => ({
  async connect(port) { return new Cluster([{ host: "127.0.0.1", port }], { ...options, redisOptions: { maxRetriesPerRequest: 1 } }); },
  async close(client) { client.disconnect(); },
});

const nodeRedisCluster = (create) => ({
  async connect(port) {
    const client = create({ rootNodes: [{ url: `redis://127.0.0.1:${port}` }] });
    client.on("error", () => {});
    await client.connect();
    return client;
  },
  async close(client) {
    if (client.destroy) client.destroy();
    else await client.disconnect(); // node-redis 4
  },
});

/** The Cluster clients, current and older majors, each a factory of a connected client and a way to close it. */
const CLUSTER_CLIENTS = {
  ioredis: ioredisCluster(Redis.Cluster),
  "node-redis": nodeRedisCluster(createCluster),
  "ioredis (auto-pipelining)": ioredisCluster(Redis.Cluster, { enableAutoPipelining: true }),
  "ioredis@5": ioredisCluster(require("ioredis-v5").Cluster),
  "node-redis@4": nodeRedisCluster(require("redis-v4").createCluster),
};

// One Cluster per backend; the clients take turns on it (their keys differ by prefix).
const clusters = {};
const admins = {};
test.before(async () => {
  for (const backend of ["module", "twin"]) {
    clusters[backend] = await startCluster({ withModule: backend === "module" });
    admins[backend] = clusters[backend].nodes.map((node) => new Redis(node.port, "127.0.0.1"));
  }
});
test.after(() => {
  Object.values(admins).flat().forEach((admin) => admin.disconnect());
  Object.values(clusters).forEach((cluster) => cluster.stop());
});

/** A key's command on a Cluster client, routed by the key. */
function onKey(client, key, args) {
  return typeof client.call === "function" ? client.call(...args) : client.sendCommand(key, false, args);
}

/** The MOVED replies the nodes have given (INFO errorstats). */
async function movedCount(nodes) {
  const stats = await Promise.all(nodes.map((admin) => raw(admin, ["INFO", "errorstats"])));
  return stats.reduce((sum, text) => sum + Number(/errorstat_MOVED:count=(\d+)/.exec(text)?.[1] ?? 0), 0);
}

/** Each node's copy of the twin's library code (undefined without one). */
function libraryCodes(nodes) {
  return Promise.all(nodes.map(async (admin) => {
    const [lib] = await raw(admin, ["FUNCTION", "LIST", "LIBRARYNAME", "patterns", "WITHCODE"]);
    return lib?.[lib.indexOf("library_code") + 1];
  }));
}

/** The PatternsError `promise` rejects with. */
async function refusal(promise) {
  const err = await promise.then(() => assert.fail("expected a refusal"), (e) => e);
  assert.ok(err instanceof PatternsError, String(err));
  return err;
}

for (const backend of ["module", "twin"]) {
  for (const [clientName, factory] of Object.entries(CLUSTER_CLIENTS)) {
    test(`${backend} on 3 primaries / ${clientName} Cluster client: every family, routed by key`, async () => {
      const nodes = admins[backend];
      await Promise.all(nodes.map((admin) => raw(admin, ["FUNCTION", "FLUSH"])));
      const client = await factory.connect(clusters[backend].port);
      const p = await createPatterns(client);
      try {
        assert.equal(p.backend, backend);
        const twin = fs.readFileSync(TWIN_PATH, "utf8");
        const twinOn = (await libraryCodes(nodes)).map((code) => code === twin);
        assert.deepEqual(twinOn, nodes.map(() => backend === "twin"), "the twin is on every primary (and only on the twin's Cluster)");
        await scenario(p, client, nodes, `${clientName}:`);
      } finally {
        await p.close();
        await factory.close(client);
      }
    });
  }
}

async function scenario(p, client, nodes, prefix) {
  // Keys in many slots, each call sent to its key's node.
  const keys = Array.from({ length: 30 }, (_, i) => `${prefix}api:${i}`);
  assert.equal(new Set(keys.map((key) => Math.floor(keySlot(key) / 5462))).size, 3, "the keys span the three primaries");
  const moved = await movedCount(nodes);
  for (const key of keys) assert.equal((await p.tokenBucket(key, { capacity: 10, rate: 5, periodMs: 1000 })).remaining, 9);
  assert.equal(await movedCount(nodes), moved, "no call was answered MOVED");

  // Several limits in one slot (a hashtag) run; across slots they are refused before sending.
  const limits = (user) => [
    { key: `${prefix}api:{${user}}:minute`, tokenBucket: { capacity: 10, rate: 10, periodMs: 60000, cost: 4 } },
    { key: `${prefix}api:{${user}}:day`, fixedWindow: { limit: 2, windowMs: 86400000 } },
  ];
  const all = await p.limitAll(limits("u7"));
  assert.deepEqual([all.allowed, all.limits.map((l) => l.remaining)], [true, [6, 1]]);
  assert.deepEqual(await p.refund(limits("u7")), [10, 2]);
  const across = [limits("u7")[0], limits("u8")[1]];
  const err = await refusal(p.limitAll(across));
  assert.equal(err.code, "CROSSSLOT");
  for (const limit of across) assert.ok(err.message.includes(`${limit.key} (slot ${keySlot(limit.key)})`), err.message);
  assert.match(err.message, /hashtag/);
  assert.equal((await refusal(p.refund(across))).code, "CROSSSLOT");
  assert.equal(await onKey(client, across[1].key, ["EXISTS", across[1].key]), 0);
  assert.equal((await refusal(p.cache.set(`${prefix}product:{1}`, "v", { ttlMs: 1000, tags: [`${prefix}tag:{2}`] }))).code, "CROSSSLOT");

  // Sessions, the cache (its invalidation heard on a subscribed connection), a leaderboard.
  const session = await p.sessions.create(`${prefix}sessions:{u1}`, { idleMs: 60000, absoluteMs: 120000, data: { user: 1 } });
  assert.deepEqual(await p.sessions.get(session), { user: "1" });
  const heard = [];
  const unsubscribe = await p.cache.onInvalidate((tag) => heard.push(tag));
  const tag = `${prefix}tag:{9}`;
  assert.deepEqual(await p.cache.getOrSet(`${prefix}product:{9}`, () => [1, 2], { ttlMs: 60000, tags: [tag] }), [1, 2]);
  assert.equal(await p.cache.invalidate(tag), 1);
  await waitUntil(() => heard.includes(tag), "the invalidation message");
  await unsubscribe();
  const board = p.leaderboard(`${prefix}game:{c}`);
  await board.add({ a: 1, b: 2 });
  assert.equal((await board.rank("a")).rank, 2);

  // Waits: on the key's node, from a dedicated connection (the module) or polling (the twin).
  const holder = p.lock(`${prefix}lock:{c}`, { ttlMs: 5000, autoExtend: false });
  assert.equal(await holder.acquire(), true);
  const waiter = p.lock(`${prefix}lock:{c}`, { ttlMs: 5000, waitMs: 5000, autoExtend: false });
  const waiting = waiter.acquire();
  await sleep(100);
  await holder.release();
  assert.equal(await waiting, true);
  assert.equal(waiter.token, holder.token + 1);
  await waiter.release();
  const reader = p.rwlock(`${prefix}doc:{c}`, { ttlMs: 5000, autoExtend: false });
  assert.equal(await reader.acquire("read"), true);
  const writer = p.rwlock(`${prefix}doc:{c}`, { ttlMs: 5000, waitMs: 5000, autoExtend: false });
  const writing = writer.acquire("write");
  await sleep(100);
  await reader.release();
  assert.equal(await writing, true);
  assert.equal((await p.rwlockInfo(`${prefix}doc:{c}`)).mode, "write");
  await writer.release();
  const permit = p.semaphore(`${prefix}pool:{c}`, { limit: 1, ttlMs: 5000 });
  assert.equal(await permit.acquire(), true);
  const permitting = p.semaphore(`${prefix}pool:{c}`, { limit: 1, ttlMs: 5000, waitMs: 5000 }).acquire();
  await sleep(100);
  await permit.release();
  assert.equal(await permitting, true);
  const queue = p.queue(`${prefix}jobs:{c}`);
  const popping = queue.pop("g", "c", { blockMs: 5000 });
  await sleep(100);
  const id = await queue.push("wake");
  assert.deepEqual((await popping).map((job) => [job.id, job.payload]), [[id, "wake"]]);
  assert.equal(await queue.ack("g", id), 1);
  const handled = [];
  const worker = queue.worker("w", "host", async (job) => { handled.push(job.payload); }, { concurrency: 2, pollMs: 100 }).start();
  for (const n of [1, 2, 3]) await queue.push(`job ${n}`);
  await waitUntil(() => handled.length === 3, "the worker's jobs");
  await worker.stop();
  assert.deepEqual(handled.sort(), ["job 1", "job 2", "job 3"]);
}

test("backend \"module\" on a Cluster without it names how many primaries lack it", async () => {
  for (const factory of Object.values(CLUSTER_CLIENTS)) {
    const client = await factory.connect(clusters.twin.port);
    try {
      await assert.rejects(createPatterns(client, { backend: "module" }), /not loaded on 3 of the 3 primaries/);
    } finally {
      await factory.close(client);
    }
  }
});

// Last: it leaves the module on one node of the twin's Cluster.
test("with the module on some primaries only, auto takes the twin (on every primary) and backend \"module\" is refused", async () => {
  const nodes = admins.twin;
  await raw(nodes[0], ["MODULE", "LOAD", modulePath()]);
  const twin = fs.readFileSync(TWIN_PATH, "utf8");
  for (const [clientName, factory] of Object.entries(CLUSTER_CLIENTS)) {
    await Promise.all(nodes.map((admin) => raw(admin, ["FUNCTION", "FLUSH"])));
    const client = await factory.connect(clusters.twin.port);
    try {
      const p = await createPatterns(client);
      assert.equal(p.backend, "twin", clientName);
      assert.deepEqual((await libraryCodes(nodes)).map((code) => code === twin), [true, true, true], clientName);
      await assert.rejects(createPatterns(client, { backend: "module" }), /not loaded on 2 of the 3 primaries/);
    } finally {
      await factory.close(client);
    }
  }
});

test("the client's slots are the server's (CLUSTER KEYSLOT), hashtags included", async () => {
  const [admin] = admins.module;
  const keys = ["", "a", "user:42", "{user42}:a", "x{user42}y", "{}", "{}{a}", "a{", "a}b{c}", "{a}{b}", "é{ü}", "日本", "k".repeat(300)];
  for (const key of keys) assert.equal(keySlot(key), Number(await raw(admin, ["CLUSTER", "KEYSLOT", key])), JSON.stringify(key));
});
