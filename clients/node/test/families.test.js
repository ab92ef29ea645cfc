// Every method of every family, with ioredis (6, and 5) and node-redis (6, and 4), on the module
// (Redis 7, Valkey 8) and on the Lua twin (both servers): each combination must give the
// expected results, and all of them the same transcript.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const { startTargets, everyCombination, raw, cacheEntry, CLIENTS, OLDER_CLIENTS } = require("./servers");
const { PatternsError } = require("..");

let env;
test.before(async () => { env = await startTargets(); });
test.after(() => env?.stopAll());

/** Runs scenario on every combination, checks each with expect, and that all transcripts agree. */
async function sameEverywhere(scenario, expected) {
  const clients = { ...CLIENTS, ...OLDER_CLIENTS };
  const results = await everyCombination(env.targets, async (ctx) => unprefix(await scenario(ctx), ctx.prefix), clients);
  for (const [label, transcript] of results) assert.deepEqual(transcript, expected, label);
  assert.equal(results.length, env.targets.length * Object.keys(clients).length);
}

/** The transcript with the client's key prefix taken out of every string. */
function unprefix(value, prefix) {
  if (typeof value === "string") return value.split(prefix).join("");
  if (Array.isArray(value)) return value.map((v) => unprefix(v, prefix));
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unprefix(v, prefix)]));
  }
  return value;
}

/** A test whose scenario records a transcript in t: on every combination it must equal expected. */
function transcriptTest(title, scenario, expected) {
  test(title, () => sameEverywhere(async (ctx) => {
    const t = [];
    await scenario(ctx, t);
    return t;
  }, expected));
}

const send = raw;
async function exists(client, key) {
  return Number(await raw(client, ["EXISTS", key]));
}

async function rejection(promise) {
  try {
    await promise;
  } catch (err) {
    return { name: err.name, message: err.message, code: err.code, patterns: err instanceof PatternsError };
  }
  assert.fail("expected a rejection");
}

test("backend: auto picks the module where it is loaded, else the twin", async () => {
  await everyCombination(env.targets, async ({ p, target }) => assert.equal(p.backend, target.backend));
});

transcriptTest("rate limiting: every limiter, peeks, headers and errors", async ({ p, client, prefix }, t) => {
  const bucket = { capacity: 3, rate: 1, periodMs: 60000 };
  for (let i = 0; i < 4; i++) {
    const r = await p.tokenBucket(`${prefix}tb`, bucket);
    t.push([r.allowed, r.limit, r.remaining, r.retryAfterMs === -1 || (r.retryAfterMs > 55000 && r.retryAfterMs <= 60000)]);
    if (i === 3) t.push(r.headers());
  }
  const peek = await p.tokenBucket(`${prefix}tb-peek`, { ...bucket, cost: 0 });
  t.push(["peek", peek.allowed, peek.remaining, await exists(client, `${prefix}tb-peek`)]);
  t.push(["never fits", (await p.tokenBucket(`${prefix}tb-big`, { ...bucket, cost: 4 })).retryAfterMs]);
  for (let i = 0; i < 3; i++) {
    const r = await p.fixedWindow(`${prefix}fw`, { limit: 2, windowMs: 3600000 });
    t.push(["fixed", r.allowed, r.remaining, r.resetAfterMs > 0 && r.resetAfterMs <= 3600000]);
  }
  for (const exact of [false, true]) {
    for (let i = 0; i < 3; i++) {
      const r = await p.slidingWindow(`${prefix}sw:${exact}`, { limit: 2, windowMs: 60000, exact, cost: 1 });
      t.push(["sliding", exact, r.allowed, r.remaining]);
    }
  }
  const cell = await p.throttle(`${prefix}cell`, { maxBurst: 15, countPerPeriod: 30, periodS: 60 });
  t.push(["throttle", cell.allowed, cell.limit, cell.remaining, cell.retryAfterMs, cell.resetAfterMs, cell.headers()]);
  t.push(await rejection(p.tokenBucket(`${prefix}tb-bad`, { capacity: 0, rate: 1 })));
  await send(client, ["HSET", `${prefix}hash`, "f", "v"]);
  t.push(await rejection(p.fixedWindow(`${prefix}hash`, { limit: 1, windowMs: 1000 })));
}, [
  [true, 3, 2, true], [true, 3, 1, true], [true, 3, 0, true], [false, 3, 0, true],
  { "RateLimit-Limit": "3", "RateLimit-Remaining": "0", "RateLimit-Reset": "180", "Retry-After": "60" },
  ["peek", true, 3, 0],
  ["never fits", -1],
  ["fixed", true, 1, true], ["fixed", true, 0, true], ["fixed", false, 0, true],
  ["sliding", false, true, 1], ["sliding", false, true, 0], ["sliding", false, false, 0],
  ["sliding", true, true, 1], ["sliding", true, true, 0], ["sliding", true, false, 0],
  ["throttle", true, 16, 15, -1, 2000, { "RateLimit-Limit": "16", "RateLimit-Remaining": "15", "RateLimit-Reset": "2" }],
  { name: "PatternsError", message: "ERR capacity must be a positive integer", code: "ERR", patterns: true },
  { name: "PatternsError", message: "WRONGTYPE Operation against a key holding the wrong kind of value", code: "WRONGTYPE", patterns: true },
]);

transcriptTest("rate limiting: limitAll admits all or consumes nothing, refund never past full", async ({ p, client, prefix }, t) => {
  const key = (name) => `${prefix}rl:{u}:${name}`;
  const bucket = { capacity: 10, rate: 1, periodMs: 60000 };
  const fields = (r) => [r.allowed, r.limit, r.remaining, r.retryAfterMs];
  const all = await p.limitAll([
    { key: key("tb"), tokenBucket: { ...bucket, cost: 2 } },
    { key: key("fw"), fixedWindow: { limit: 2, windowMs: 60000 } },
    { key: key("sw"), slidingWindow: { limit: 5, windowMs: 60000, cost: 2, exact: true } },
  ]);
  t.push(["all", all.allowed, all.denied, all.limits.map(fields), all.limits[0].resetAfterMs, all.limits[0].headers()]);
  t.push(["consumed", (await p.tokenBucket(key("tb"), { ...bucket, cost: 0 })).remaining,
    (await p.fixedWindow(key("fw"), { limit: 2, windowMs: 60000, cost: 0 })).remaining, Number(await send(client, ["ZCARD", key("sw")]))]);
  await p.fixedWindow(key("fw"), { limit: 2, windowMs: 60000 });
  const stored = async () => [await send(client, ["GET", key("tb")]), await send(client, ["GET", key("fw")]),
    (await send(client, ["ZRANGE", key("sw"), "0", "-1", "WITHSCORES"])).map(String)];
  const before = await stored();
  const denied = await p.limitAll([
    { key: key("tb"), tokenBucket: { ...bucket, cost: 4 } },
    { key: key("sw"), slidingWindow: { limit: 5, windowMs: 60000, exact: true } },
    { key: key("fw"), fixedWindow: { limit: 2, windowMs: 60000 } },
    { key: key("new"), fixedWindow: { limit: 1, windowMs: 60000, cost: 2 } },
  ]);
  t.push(["denied", denied.allowed, denied.denied, denied.limits.map(fields).map(([a, l, r, retry]) => [a, l, r, retry > 0 ? "later" : retry])]);
  t.push(["nothing consumed", JSON.stringify(await stored()) === JSON.stringify(before), await exists(client, key("new"))]);
  t.push(["refund", await p.refund([
    { key: key("tb"), tokenBucket: { ...bucket, cost: 1 } },
    { key: key("fw"), fixedWindow: { limit: 2, windowMs: 60000, cost: 5 } },
    { key: key("sw"), slidingWindow: { limit: 5, windowMs: 60000, exact: true } },
    { key: key("none"), tokenBucket: bucket },
  ]), Number(await send(client, ["ZCARD", key("sw")])), await exists(client, key("none"))]);
  t.push(["full", await p.refund([{ key: key("tb"), tokenBucket: { ...bucket, cost: 50 } }])]);
  t.push(await rejection(p.limitAll([{ key: key("x"), tokenBucket: bucket }, { key: key("x"), fixedWindow: { limit: 1, windowMs: 1000 } }])));
  t.push(await rejection(p.refund([{ key: key("y"), slidingWindow: { limit: 0, windowMs: 1000 } }])));
  t.push(await rejection(p.refund([])));
}, [
  ["all", true, null, [[true, 10, 8, -1], [true, 2, 1, -1], [true, 5, 3, -1]], 120000,
    { "RateLimit-Limit": "10", "RateLimit-Remaining": "8", "RateLimit-Reset": "120" }],
  ["consumed", 8, 1, 2],
  ["denied", false, 2, [[true, 10, 4, -1], [true, 5, 2, -1], [false, 2, 0, "later"], [false, 1, 1, -1]]],
  ["nothing consumed", true, 0],
  ["refund", [9, 2, 4, 10], 1, 0],
  ["full", [10]],
  { name: "PatternsError", message: "ERR a key may appear only once in a call", code: "ERR", patterns: true },
  { name: "PatternsError", message: "ERR limit must be a positive integer", code: "ERR", patterns: true },
  { name: "PatternsError", message: "ERR wrong number of arguments for 'rl.refund' command", code: "ERR", patterns: true },
]);

transcriptTest("locks: acquire, reentrancy, release, extend, info, withLock, semaphores, fencedHset", async ({ p, prefix }, t) => {
  const key = `${prefix}lock:{order:42}`;
  const a = p.lock(key, { ttlMs: 30000, owner: "worker-a" });
  const b = p.lock(key, { ttlMs: 30000, owner: "worker-b" });
  t.push(["a", await a.acquire(), a.token, a.held]);
  t.push(["a again", await a.acquire(), a.token]);
  const info = await p.lockInfo(key);
  t.push(["info", info.owner, info.token, info.holds, info.waiters, info.ttlMs > 29000 && info.ttlMs <= 30000]);
  t.push(["b", await b.acquire(), b.token, b.held]);
  t.push(["b release", await b.release()]);
  t.push(["a release", await a.release(), await a.release(), await a.release(), a.held]);
  t.push(["b", await b.acquire(), b.token, await b.extend(60000), (await b.info()).ttlMs > 59000]);
  t.push(["fenced", await p.fencedHset(`${prefix}order:{order:42}`, 2, { status: "shipped", n: 1 }),
    await p.fencedHset(`${prefix}order:{order:42}`, 1, { status: "refunded" })]);
  t.push(["withLock held", await rejection(p.withLock(key, {}, () => "never"))]);
  t.push(["a extend", await a.extend(1000)]);
  await b.release();
  t.push(["withLock", await p.withLock(key, { ttlMs: 5000 }, async (lock) => [lock.token, lock.held, (await lock.info()).owner === lock.owner])]);
  t.push(["free", await p.lockInfo(key)]);
  const sem = (owner) => p.semaphore(`${prefix}pool`, { limit: 2, ttlMs: 60000, owner });
  t.push(["sem", await sem("a").acquire(), await sem("b").acquire(), await sem("c").acquire(), await sem("a").count()]);
  t.push(["sem release", await sem("a").release(), await sem("a").release(), await sem("c").acquire()]);
  t.push(["withPermit", await rejection(sem("d").withPermit(() => 1))]);
  await sem("b").release();
  t.push(["withPermit", await sem("d").withPermit(() => "in"), await sem("d").count()]);
  t.push(await rejection(p.lock(`${prefix}bad`, { ttlMs: 0 }).acquire()));
}, [
  ["a", true, 1, true],
  ["a again", true, 1],
  ["info", "worker-a", 1, 2, 0, true],
  ["b", false, undefined, false],
  ["b release", false],
  ["a release", true, true, false, false],
  ["b", true, 2, true, true],
  ["fenced", true, false],
  ["withLock held", { name: "LockNotAcquiredError", message: "lock lock:{order:42} not acquired within 0 ms", code: undefined, patterns: false }],
  ["a extend", false],
  ["withLock", [3, true, true]],
  ["free", null],
  ["sem", true, true, false, 2],
  ["sem release", true, false, true],
  ["withPermit", { name: "LockNotAcquiredError", message: "lock pool not acquired within 0 ms", code: undefined, patterns: false }],
  ["withPermit", "in", 1],
  { name: "PatternsError", message: "ERR ttl_ms must be a positive integer", code: "ERR", patterns: true },
]);

transcriptTest("read/write locks: read holds shared, write exclusive and fenced, extend, info, withRead, withWrite", async ({ p, prefix }, t) => {
  const key = `${prefix}rw:{doc:7}`;
  const rw = (owner, options = {}) => p.rwlock(key, { ttlMs: 30000, owner, ...options });
  const r1 = rw("reader-1");
  const r2 = rw("reader-2");
  const w = rw("writer");
  t.push(["reads", await r1.acquire("read"), await r2.acquireRead(), await r1.acquireRead(), r1.held, r1.mode, r1.token]);
  const info = await p.rwlockInfo(key);
  t.push(["info read", info.mode, info.owner, info.token, info.readers, info.waiters, info.ttlMs > 29000 && info.ttlMs <= 30000]);
  t.push(["write refused", await w.acquireWrite(), w.token, w.held]);
  t.push(["releases", await r1.release(), await r2.release(), await r2.release(), r1.held, r1.mode]);
  t.push(["write", await w.acquire("write"), w.token, await w.acquireWrite(), w.token, w.mode]);
  const winfo = await w.info();
  t.push(["info write", winfo.mode, winfo.owner, winfo.token, winfo.readers, winfo.waiters]);
  t.push(["read refused", await r1.acquireRead(), await r1.extend()]);
  t.push(["extend", await w.extend(60000), (await w.info()).ttlMs > 59000]);
  t.push(["write releases", await w.release(), w.held, await w.release(), w.held, await w.release(), await p.rwlockInfo(key)]);
  t.push(["withWrite", await rw("w2").withWrite(async (lock) => [lock.mode, lock.token, (await lock.info()).owner])]);
  t.push(["withRead", await r2.withRead(async (lock) => [lock.mode, lock.token, (await lock.info()).readers]), r2.held]);
  await r2.acquireRead();
  t.push(["withWrite held", await rejection(rw("w3").withWrite(() => "never"))]);
  await r2.release();
  t.push(await rejection(rw("bad", { ttlMs: 0 }).acquireRead()));
}, [
  ["reads", true, true, true, true, "read", undefined],
  ["info read", "read", null, null, 2, 0, true],
  ["write refused", false, undefined, false],
  ["releases", true, true, false, false, undefined],
  ["write", true, 1, true, 1, "write"],
  ["info write", "write", "writer", 1, 0, 0],
  ["read refused", false, false],
  ["extend", true, true],
  ["write releases", true, true, true, false, false, null],
  ["withWrite", ["write", 2, "w2"]],
  ["withRead", ["read", undefined, 1], false],
  ["withWrite held", { name: "LockNotAcquiredError", message: "lock rw:{doc:7} not acquired within 0 ms", code: undefined, patterns: false }],
  { name: "PatternsError", message: "ERR ttl_ms must be a positive integer", code: "ERR", patterns: true },
]);

transcriptTest("leaderboards: WITHRANK on add and incr", async ({ p, prefix }, t) => {
  const lb = p.leaderboard(`${prefix}game:{wr}`);
  t.push(["add", await lb.add({ alice: 300, bob: 250 }, { withRank: true })]);
  t.push(["add competition", await lb.add(new Map([["carol", 300], ["dave", 120]]), { withRank: true, ranking: "competition" })]);
  t.push(["add asc", await lb.add({ erin: 10 }, { withRank: true, order: "asc" })]);
  t.push(["incr", await lb.incr("bob", 50, { withRank: true }), await lb.incr("bob", 0, { withRank: true, ranking: "dense" })]);
  t.push(["incr asc", await lb.incr("dave", 1, { withRank: true, order: "asc", ranking: "modified" }), await lb.incr("dave", 1)]);
}, [
  ["add", [{ rank: 1, score: 300, total: 2 }, { rank: 2, score: 250, total: 2 }]],
  ["add competition", [{ rank: 1, score: 300, total: 4 }, { rank: 4, score: 120, total: 4 }]],
  ["add asc", [{ rank: 1, score: 10, total: 5 }]],
  ["incr", { rank: 3, score: 300, total: 5 }, { rank: 1, score: 300, total: 5 }],
  ["incr asc", { rank: 2, score: 121, total: 5 }, 122],
]);

transcriptTest("leaderboards: add, incr, remove, rank, around, top, page, percentile", async ({ p, prefix }, t) => {
  const lb = p.leaderboard(`${prefix}game:{s1}`);
  t.push(["add", await lb.add({ alice: 300, bob: 250, carol: 300, dave: 120 })]);
  t.push(["incr", await lb.incr("bob", 50)]);
  t.push(["top", await lb.top(4, { ranking: "competition" })]);
  t.push(["rank", await lb.rank("bob"), await lb.rank("bob", { ranking: "dense" }), await lb.rank("dave", { order: "asc" })]);
  t.push(["around", await lb.around("bob", 3, { ranking: "dense" }), await lb.around("nobody", 3)]);
  t.push(["page", await lb.page(2, 3), await lb.page(3, 3)]);
  t.push(["percentile", await lb.percentile("bob"), await lb.percentile("dave", { order: "asc" }), await lb.percentile("nobody")]);
  t.push(["top offset asc", await lb.top(2, { offset: 1, order: "asc", ranking: "modified" })]);
  t.push(["remove", await lb.remove("dave", "nobody"), await lb.rank("dave")]);
  t.push(["map order", await lb.add(new Map([["zed", 10], ["amy", 10]])), (await lb.top(2, { order: "asc" })).map((e) => e.member)]);
  t.push(["inf", await lb.add({ top: Infinity }), await lb.rank("top"), await lb.incr("zed", -0.5)]);
  t.push(await rejection(lb.top(0)));
  t.push(await rejection(lb.incr("bob", NaN)));
}, [
  ["add", 4],
  ["incr", 300],
  ["top", [
    { rank: 1, member: "alice", score: 300 }, { rank: 1, member: "carol", score: 300 },
    { rank: 1, member: "bob", score: 300 }, { rank: 4, member: "dave", score: 120 },
  ]],
  ["rank", { rank: 3, score: 300, total: 4 }, { rank: 1, score: 300, total: 4 }, { rank: 1, score: 120, total: 4 }],
  ["around", [
    { rank: 1, member: "carol", score: 300 }, { rank: 1, member: "bob", score: 300 }, { rank: 2, member: "dave", score: 120 },
  ], null],
  ["page", { totalPages: 2, entries: [{ rank: 4, member: "dave", score: 120 }] }, { totalPages: 2, entries: [] }],
  ["percentile", 25, 75, null],
  ["top offset asc", [{ rank: 4, member: "alice", score: 300 }, { rank: 4, member: "carol", score: 300 }]],
  ["remove", 1, null],
  ["map order", 2, ["zed", "amy"]],
  ["inf", 1, { rank: 1, score: Infinity, total: 6 }, 9.5],
  { name: "PatternsError", message: "ERR count must be a positive integer", code: "ERR", patterns: true },
  { name: "PatternsError", message: "ERR increment must be a number", code: "ERR", patterns: true },
]);

transcriptTest("cache: set, get, tag, invalidate, onInvalidate, getOrSet, serializer", async ({ p, client, prefix }, t) => {
  const heard = [];
  const unsubscribe = await p.cache.onInvalidate((tag) => { if (tag.startsWith(prefix)) heard.push(tag); });
  await p.cache.set(`${prefix}product:{42}`, { name: "lamp", price: 12.5 }, { ttlMs: 600000, deltaMs: 120, graceMs: 30000, tags: [`${prefix}tag:{42}:catalog`] });
  t.push(["get", await p.cache.get(`${prefix}product:{42}`), await p.cache.get(`${prefix}absent:{42}`)]);
  t.push(["tag", await p.cache.tag(`${prefix}product:{42}`, `${prefix}tag:{42}:lamps`, `${prefix}tag:{42}:catalog`)]);
  t.push(["invalidate", await p.cache.invalidate(`${prefix}tag:{42}:lamps`), await p.cache.get(`${prefix}product:{42}`)]);
  let computed = 0;
  const compute = async () => { computed += 1; return ["report", computed]; };
  const opts = { ttlMs: 60000, graceMs: 10000, tags: [`${prefix}tag:{7}`] };
  t.push(["getOrSet", await p.cache.getOrSet(`${prefix}report:{7}`, compute, opts), await p.cache.getOrSet(`${prefix}report:{7}`, compute, opts), computed]);
  t.push(["entry", (await cacheEntry(client, `${prefix}report:{7}`)).value, Number(await raw(client, ["ZCARD", `${prefix}tag:{7}`]))]);
  t.push(["invalidate", await p.cache.invalidate(`${prefix}tag:{7}`, `${prefix}tag:{none}`)]);
  t.push(["again", await p.cache.getOrSet(`${prefix}report:{7}`, compute, opts), computed]);
  await waitFor(() => heard.length >= 3);
  t.push(["heard", heard.sort()]);
  await unsubscribe();
  t.push(await rejection(p.cache.set(`${prefix}x`, 1, { ttlMs: 0 })));
  t.push(await rejection(p.cache.tag(`${prefix}absent:{42}`, `${prefix}tag:{42}:x`)));
}, [
  ["get", { name: "lamp", price: 12.5 }, undefined],
  ["tag", 1],
  ["invalidate", 1, undefined],
  ["getOrSet", ["report", 1], ["report", 1], 1],
  ["entry", '["report",1]', 1],
  ["invalidate", 1],
  ["again", ["report", 2], 2],
  ["heard", ["tag:{42}:lamps", "tag:{7}", "tag:{none}"]],
  { name: "PatternsError", message: "ERR ttl_ms must be a positive integer", code: "ERR", patterns: true },
  { name: "PatternsError", message: "ERR no cached value at key", code: "ERR", patterns: true },
]);

transcriptTest("sessions: create, get, set, rotate, destroy, destroyAll, list, count", async ({ p, prefix }, t) => {
  const index = `${prefix}sessions:{user:42}`;
  const first = await p.sessions.create(index, { idleMs: 1800000, absoluteMs: 86400000, data: { user: 42, role: "admin", beta: true } });
  t.push(["key", new RegExp(`^${escape(index)}:[A-Za-z0-9_-]{22}$`).test(first)]);
  t.push(["get", await p.sessions.get(first)]);
  t.push(["set", await p.sessions.set(first, { role: "owner", theme: "dark" }), await p.sessions.get(first)]);
  const rotated = await p.sessions.rotate(first);
  t.push(["rotate", rotated !== first, rotated.startsWith(`${index}:`), await p.sessions.get(first), (await p.sessions.get(rotated)).theme]);
  const second = await p.sessions.create(index, { idleMs: 1000, absoluteMs: 2000 });
  t.push(["list", await p.sessions.count(index), (await p.sessions.list(index)).sort().join() === [rotated, second].sort().join(), await p.sessions.get(second)]);
  t.push(["destroy", await p.sessions.destroy(rotated), await p.sessions.destroy(rotated), await p.sessions.count(index)]);
  t.push(["gone", await p.sessions.set(rotated, { a: 1 }), await p.sessions.rotate(rotated)]);
  t.push(["destroyAll", await p.sessions.destroyAll(index), await p.sessions.count(index), await p.sessions.list(index)]);
  t.push(await rejection(p.sessions.create(index, { idleMs: 0, absoluteMs: 1000 })));
  t.push(await rejection(p.sessions.create(index, { idleMs: 10, absoluteMs: 100, data: { __idle_ms: 1 } })));
}, [
  ["key", true],
  ["get", { user: "42", role: "admin", beta: "true" }],
  ["set", 1, { user: "42", role: "owner", beta: "true", theme: "dark" }],
  ["rotate", true, true, null, "dark"],
  ["list", 2, true, {}],
  ["destroy", true, false, 1],
  ["gone", null, null],
  ["destroyAll", 1, 0, []],
  { name: "PatternsError", message: "ERR idle_ms must be a positive integer", code: "ERR", patterns: true },
  { name: "PatternsError", message: "ERR field names starting with __ are reserved", code: "ERR", patterns: true },
]);

transcriptTest("sessions: maxSessions caps the index, destroying the sessions soonest to expire", async ({ p, prefix }, t) => {
  const index = `${prefix}sessions:{user:7}`;
  const create = (idleMs) => p.sessions.create(index, { idleMs, absoluteMs: 86400000, maxSessions: 2 });
  const first = await create(100000);
  const second = await create(300000);
  const third = await create(200000);
  t.push(["capped", await p.sessions.count(index), await p.sessions.get(first), (await p.sessions.list(index)).join() === [third, second].join()]);
  const fourth = await p.sessions.create(index, { idleMs: 400000, absoluteMs: 86400000, maxSessions: 1, data: { device: "phone" } });
  t.push(["max 1", await p.sessions.count(index), await p.sessions.get(fourth)]);
  t.push(["uncapped", typeof (await p.sessions.create(index, { idleMs: 1000, absoluteMs: 2000 })), await p.sessions.count(index)]);
  t.push(await rejection(p.sessions.create(index, { idleMs: 1000, absoluteMs: 2000, maxSessions: 0 })));
}, [
  ["capped", 2, null, true],
  ["max 1", 1, { device: "phone" }],
  ["uncapped", "string", 2],
  { name: "PatternsError", message: "ERR MAX must be a positive integer", code: "ERR", patterns: true },
]);

function escape(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

async function waitFor(condition, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}
