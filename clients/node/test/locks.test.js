// Contended locks across connections: FIFO hand-over on the module, mutual exclusion and
// increasing fencing tokens everywhere, waits off the caller's connection, auto-extension.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const { startTargets, everyCombination, everyCombinationAtOnce, CLIENTS, raw, sleep, waitUntil } = require("./servers");
const { createPatterns } = require("..");

let env;
test.before(async () => { env = await startTargets(); });
test.after(() => env?.stopAll());

/** n more Patterns, each over its own client of the same kind. */
async function others(target, clientName, n) {
  const factory = CLIENTS[clientName];
  const list = [];
  for (let i = 0; i < n; i++) {
    const client = await factory.connect(target.server.url);
    list.push({ client, p: await createPatterns(client) });
  }
  return {
    list,
    async close() {
      for (const { client, p } of list) { await p.close(); await factory.close(client); }
    },
  };
}

test("module: waiters on other connections are served first come, first served, with increasing tokens", async () => {
  const moduleTargets = env.targets.filter((t) => t.backend === "module");
  await everyCombination(moduleTargets, async ({ p, target, clientName, prefix }) => {
    const key = `${prefix}lock:{fifo}`;
    const holder = p.lock(key, { ttlMs: 20000 });
    assert.equal(await holder.acquire(), true);
    const waiters = await others(target, clientName, 5);
    try {
      const order = [];
      const pending = waiters.list.map(({ p: q }, i) => ({ i, lock: q.lock(key, { ttlMs: 20000, waitMs: 15000 }) }));
      const done = [];
      for (const { i, lock } of pending) {
        done.push(lock.acquire().then(async (granted) => {
          order.push([i, granted, lock.token]);
          await sleep(5);
          await lock.release();
        }));
        await waitUntil(async () => (await p.lockInfo(key)).waiters === i + 1, `waiter ${i} to queue`);
      }
      await holder.release();
      await Promise.all(done);
      assert.deepEqual(order.map(([i]) => i), [0, 1, 2, 3, 4]);
      assert.ok(order.every(([, granted]) => granted));
      const tokens = order.map(([, , token]) => token);
      assert.deepEqual(tokens, [...tokens].sort((a, b) => a - b));
      assert.ok(tokens[0] > holder.token && new Set(tokens).size === 5, `tokens ${tokens}`);
    } finally {
      await waiters.close();
    }
  });
});

test("every backend: contended workers exclude each other and get increasing tokens", async () => {
  await everyCombination(env.targets, async ({ target, clientName, prefix }) => {
    const key = `${prefix}lock:{contended}`;
    const workers = await others(target, clientName, 4);
    try {
      let inside = 0;
      const grants = [];
      await Promise.all(workers.list.map(async ({ p }) => {
        for (let round = 0; round < 3; round++) {
          await p.withLock(key, { ttlMs: 10000, waitMs: 10000 }, async (lock) => {
            inside += 1;
            assert.equal(inside, 1, "two holders at once");
            grants.push(lock.token);
            await sleep(2);
            inside -= 1;
          });
        }
      }));
      assert.equal(grants.length, 12);
      for (let i = 1; i < grants.length; i++) assert.ok(grants[i] > grants[i - 1], `tokens ${grants}`);
    } finally {
      await workers.close();
    }
  });
});

test("module: a blocking wait runs on a dedicated connection, never the caller's", async () => {
  const moduleTargets = env.targets.filter((t) => t.backend === "module");
  await everyCombination(moduleTargets, async ({ p, client, prefix }) => {
    const key = `${prefix}lock:{blocking}`;
    const holder = p.lock(key, { ttlMs: 20000 });
    await holder.acquire();
    const waiter = p.lock(key, { ttlMs: 20000, waitMs: 10000 });
    let settled = false;
    const waiting = waiter.acquire().finally(() => { settled = true; });
    await waitUntil(async () => (await p.lockInfo(key)).waiters === 1, "the waiter to queue");
    assert.equal(await raw(client, ["PING"]), "PONG");
    assert.equal(settled, false, "the caller's connection answered only after the wait");
    await holder.release();
    assert.equal(await waiting, true);
    assert.ok(waiter.token > holder.token);
    await waiter.release();
  });
});

test("every backend: auto-extend keeps the lock past its TTL, and flags it lost when an extension fails", async () => {
  // All combinations at once: each sleeps past its TTL. An extension every 300 ms keeps a
  // 900 ms lease unless the machine stalls for 600 ms.
  await everyCombinationAtOnce(env.targets, async ({ p, client, prefix }) => {
    const key = `${prefix}lock:{extend}`;
    const lost = [];
    const lock = p.lock(key, { ttlMs: 900, autoExtend: true, onLost: () => lost.push(key) });
    assert.equal(await lock.acquire(), true);
    await sleep(2000);
    const info = await p.lockInfo(key);
    assert.equal(info?.owner, lock.owner, "the lease ended although auto-extend was on");
    assert.equal(info.token, lock.token);
    assert.equal(lock.held, true);
    await raw(client, ["DEL", key]); // a forced unlock: the next extension fails
    await waitUntil(async () => lock.lost, "the lock to be flagged lost");
    assert.equal(lock.held, false);
    assert.deepEqual(lost, [key]);
    assert.equal(await lock.release(), false);
  });
});

test("every backend: a semaphore waiter gets the permit another returns", async () => {
  await everyCombination(env.targets, async ({ p, prefix }) => {
    const a = p.semaphore(`${prefix}sem:{wait}`, { limit: 1, ttlMs: 10000 });
    const b = p.semaphore(`${prefix}sem:{wait}`, { limit: 1, ttlMs: 10000, waitMs: 10000 });
    assert.equal(await a.acquire(), true);
    const waiting = b.acquire();
    await sleep(50);
    assert.equal(await a.release(), true);
    assert.equal(await waiting, true);
    assert.equal(await b.count(), 1);
    assert.equal(await b.release(), true);
    const c = p.semaphore(`${prefix}sem:{wait}`, { limit: 1, ttlMs: 10000, waitMs: 100 });
    const d = p.semaphore(`${prefix}sem:{wait}`, { limit: 1, ttlMs: 10000, waitMs: 100 });
    assert.equal(await c.acquire(), true);
    assert.equal(await d.acquire(), false, "a full semaphore granted a permit after its wait");
  });
});

test("every backend: a read/write lock's writer waits for the readers, and readers for the writer", async () => {
  await everyCombination(env.targets, async ({ p, target, clientName, prefix }) => {
    const key = `${prefix}rw:{wait}`;
    const r1 = p.rwlock(key, { ttlMs: 10000 });
    const r2 = p.rwlock(key, { ttlMs: 10000 });
    assert.equal(await r1.acquireRead(), true);
    assert.equal(await r2.acquireRead(), true);
    const workers = await others(target, clientName, 2);
    try {
      const [{ p: q1 }, { p: q2 }] = workers.list;
      const writer = q1.rwlock(key, { ttlMs: 10000, waitMs: 10000 });
      const writing = writer.acquireWrite();
      if (p.backend === "module") await waitUntil(async () => (await p.rwlockInfo(key)).waiters === 1, "the writer to queue");
      else await sleep(50);
      // On the module a new reader queues behind the waiting writer (FIFO for both modes).
      const reader = q2.rwlock(key, { ttlMs: 10000, waitMs: 10000 });
      const reading = reader.acquireRead();
      if (p.backend === "module") await waitUntil(async () => (await p.rwlockInfo(key)).waiters === 2, "the reader to queue");
      assert.equal(await r1.release(), true);
      assert.equal(await r2.release(), true);
      if (p.backend === "module") {
        assert.equal(await writing, true);
        assert.ok(writer.token >= 1);
        await sleep(30);
        assert.equal(reader.held, false, "a reader got in while the writer held the lock");
        assert.equal(await writer.release(), true);
        assert.equal(await reading, true);
      } else {
        // The twin polls: whichever polls first may win; both end up granted in turn.
        const [w, r] = await Promise.all([
          writing.then(async (granted) => { const g = [granted, writer.token]; await sleep(20); await writer.release(); return g; }),
          reading.then(async (granted) => { await sleep(20); await reader.release(); return granted; }),
        ]);
        assert.equal(w[0], true);
        assert.ok(w[1] >= 1);
        assert.equal(r, true);
      }
      if (reader.held) await reader.release();
      const late = q1.rwlock(key, { ttlMs: 10000, waitMs: 100 });
      assert.equal(await r1.acquireWrite(), true);
      assert.equal(await late.acquireRead(), false, "a read hold was granted while the writer held the lock");
      assert.equal(await r1.release(), true);
    } finally {
      await workers.close();
    }
  });
});

test("every backend: a read/write lock's auto-extend keeps both modes past their TTL, and flags a lost hold", async () => {
  await everyCombinationAtOnce(env.targets, async ({ p, client, prefix }) => {
    const key = `${prefix}rw:{extend}`;
    const lost = [];
    const writer = p.rwlock(key, { ttlMs: 900, autoExtend: true, onLost: () => lost.push("write") });
    assert.equal(await writer.acquireWrite(), true);
    await sleep(2000);
    const info = await p.rwlockInfo(key);
    assert.equal(info?.owner, writer.owner, "the write lease ended although auto-extend was on");
    assert.equal(info.token, writer.token);
    assert.equal(await writer.release(), true);
    const reader = p.rwlock(key, { ttlMs: 900, autoExtend: true, onLost: () => lost.push("read") });
    assert.equal(await reader.acquireRead(), true);
    await sleep(2000);
    assert.equal((await p.rwlockInfo(key))?.readers, 1, "the read lease ended although auto-extend was on");
    assert.equal(reader.held, true);
    await raw(client, ["DEL", key]); // drops the read holds: the next extension fails
    await waitUntil(async () => reader.lost, "the read hold to be flagged lost");
    assert.equal(reader.held, false);
    assert.deepEqual(lost, ["read"]);
    assert.equal(await reader.release(), false);
  });
});
