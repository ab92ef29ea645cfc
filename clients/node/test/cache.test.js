// getOrSet's state machine on every backend and client: one computation for 50 concurrent
// callers (MISS, WAIT), early and stale refreshes served at once and filled in the background
// (REFRESH, STALE), failures, and a pluggable serializer.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const { startTargets, everyCombination, CLIENTS, cacheEntry, sleep } = require("./servers");
const { createPatterns } = require("..");

let env;
test.before(async () => { env = await startTargets(); });
test.after(() => env?.stopAll());

test("getOrSet: 50 concurrent callers on 5 connections compute once and all get the value", async () => {
  await everyCombination(env.targets, async ({ p, target, clientName, prefix }) => {
    const factory = CLIENTS[clientName];
    const clients = await Promise.all([1, 2, 3, 4].map(() => factory.connect(target.server.url)));
    const all = [p, ...(await Promise.all(clients.map((c) => createPatterns(c))))];
    try {
      let computed = 0;
      const compute = async () => { computed += 1; await sleep(100); return { report: 7, rows: [1, 2, 3] }; };
      const values = await Promise.all(Array.from({ length: 50 }, (_, i) =>
        all[i % all.length].cache.getOrSet(`${prefix}report:{7}`, compute, { ttlMs: 60000 })));
      assert.equal(computed, 1);
      for (const v of values) assert.deepEqual(v, { report: 7, rows: [1, 2, 3] });
      // The fill recorded the measured computation time as XFetch's delta.
      assert.ok((await cacheEntry(clients[0], `${prefix}report:{7}`)).deltaMs >= 90);
    } finally {
      for (const q of all.slice(1)) await q.close();
      for (const c of clients) await factory.close(c);
    }
  });
});

test("getOrSet: an early (XFetch) refresh serves the value and recomputes in the background", async () => {
  await everyCombination(env.targets, async ({ p, prefix }) => {
    const key = `${prefix}early:{1}`;
    // A recompute time of 10^12 ms makes XFetch pick every reader of the fresh value.
    await p.cache.set(key, "v1", { ttlMs: 60000, deltaMs: 1e12 });
    let computed = 0;
    const value = await p.cache.getOrSet(key, async () => { computed += 1; await sleep(20); return "v2"; }, { ttlMs: 60000, deltaMs: 0 });
    assert.equal(value, "v1");
    await p.close(); // waits for background refreshes
    assert.equal(computed, 1);
    assert.equal(await p.cache.get(key), "v2");
  });
});

test("getOrSet: a stale value is served to everyone while one caller refreshes it", async () => {
  await everyCombination(env.targets, async ({ p, prefix }) => {
    const key = `${prefix}stale:{1}`;
    await p.cache.set(key, "old", { ttlMs: 20, graceMs: 60000 });
    await sleep(60);
    let computed = 0;
    const compute = async () => { computed += 1; await sleep(100); return "new"; };
    const served = await Promise.all(Array.from({ length: 10 }, () => p.cache.getOrSet(key, compute, { ttlMs: 60000 })));
    assert.deepEqual(served, Array(10).fill("old"));
    await p.close();
    assert.equal(computed, 1);
    assert.equal(await p.cache.getOrSet(key, compute, { ttlMs: 60000 }), "new");
  });
});

test("getOrSet: a failing computation rejects the caller; a failing background refresh goes to onRefreshError", async () => {
  await everyCombination(env.targets, async ({ client, prefix }) => {
    const errors = [];
    const p = await createPatterns(client, { onRefreshError: (err) => errors.push(err.message) });
    try {
      await assert.rejects(p.cache.getOrSet(`${prefix}fail:{1}`, () => { throw new Error("db down"); }, { ttlMs: 1000, leaseMs: 50 }), /db down/);
      await p.cache.set(`${prefix}fail:{2}`, 1, { ttlMs: 60000, deltaMs: 1e12 });
      assert.equal(await p.cache.getOrSet(`${prefix}fail:{2}`, async () => { throw new Error("refresh failed"); }, { ttlMs: 1000 }), 1);
      await p.close();
      assert.deepEqual(errors, ["refresh failed"]);
      // The failed MISS's lease ends after leaseMs; then the next caller computes.
      await sleep(80);
      assert.equal(await p.cache.getOrSet(`${prefix}fail:{1}`, () => "ok", { ttlMs: 1000 }), "ok");
    } finally {
      await p.close();
    }
  });
});

test("a pluggable serializer decides what the cache stores", async () => {
  await everyCombination(env.targets, async ({ client, prefix }) => {
    const serializer = {
      serialize: (v) => `date:${v.toISOString()}`,
      deserialize: (s) => new Date(s.slice("date:".length)),
    };
    const p = await createPatterns(client, { serializer });
    try {
      const when = new Date(Date.UTC(2024, 0, 2, 3, 4, 5));
      await p.cache.set(`${prefix}when:{1}`, when, { ttlMs: 60000 });
      assert.equal((await cacheEntry(client, `${prefix}when:{1}`)).value, "date:2024-01-02T03:04:05.000Z");
      assert.deepEqual(await p.cache.get(`${prefix}when:{1}`), when);
      assert.deepEqual(await p.cache.getOrSet(`${prefix}when:{2}`, () => when, { ttlMs: 60000 }), when);
    } finally {
      await p.close();
    }
  });
});
