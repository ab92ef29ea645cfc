// The queue family and its worker, with ioredis and node-redis, on the module (Redis 7, Valkey 8)
// and on the Lua twin (both servers, where a blocking pop polls).
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const { startTargets, everyCombination, everyCombinationAtOnce, raw, sleep, waitUntil } = require("./servers");
const { PatternsError } = require("..");

let env;
test.before(async () => { env = await startTargets(); });
test.after(() => env?.stopAll());

/**
 * A test over the queue `jobs:{name}`: scenario gets the combination's context, `key` and `q`.
 * By default on every combination at once (the scenarios mostly sleep; their keys differ).
 */
function queueTest(title, name, scenario, combinations = everyCombinationAtOnce) {
  test(title, () => combinations(env.targets, (ctx) => {
    const key = `${ctx.prefix}jobs:{${name}}`;
    return scenario({ ...ctx, key, q: ctx.p.queue(key) });
  }));
}

queueTest("push, pop, ack, nack, dedupe, delay and stats", "mail", async ({ client, key, q }) => {
  const first = await q.push("hello");
  assert.equal(await q.push("again", { dedupe: "d1", dedupeTtlMs: 60000 }), await q.push("x", { dedupe: "d1" }));
  const later = await q.push("later", { delayMs: 300 });
  assert.deepEqual(await q.stats("g"), { ready: 2, delayed: 1, pending: 0, dead: 0, consumers: 0 });
  const jobs = await q.pop("g", "c1", { count: 5 });
  assert.deepEqual(jobs.map((j) => [j.payload, j.deliveries]), [["hello", 1], ["again", 1]]);
  assert.equal(jobs[0].id, first);
  assert.deepEqual(await q.pop("g", "c1"), []);
  assert.equal(await q.ack("g", first, "0-1"), 1);
  assert.equal(await q.nack("g", jobs[1].id, { delayMs: 200 }), true);
  assert.equal(await q.nack("g", first), false);
  assert.deepEqual(await q.stats("g"), { ready: 0, delayed: 2, pending: 0, dead: 0, consumers: 1 });
  await sleep(350);
  const due = await q.pop("g", "c1", { count: 5 });
  assert.deepEqual(due.map((j) => [j.id, j.deliveries]).sort(), [[jobs[1].id, 2], [later, 1]].sort());
  assert.equal(await q.ack("g", ...due.map((j) => j.id)), 2);
  assert.equal(Number(await raw(client, ["XLEN", key])), 0);
}, everyCombination);

/** Waits until the server's clock has passed the end of job `id`'s lease in `group`. */
async function untilLeaseEnds(client, key, group, id) {
  const end = await raw(client, ["ZSCORE", `${key}:leases:${group}`, id]);
  assert.notEqual(end, null);
  await waitUntil(async () => {
    const [seconds, micros] = await raw(client, ["TIME"]);
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) > Number(end);
  }, `the end of ${id}'s lease`);
}

queueTest("a crashed consumer's job is delivered again after its lease, then dead-lettered and redriven", "crash", async ({ client, key, q }) => {
  const id = await q.push("poison");
  await q.pop("g", "crashes", { leaseMs: 200 });
  // Extended well past the first lease, so that the check below falls between the two ends
  // however late it runs on a loaded machine.
  assert.equal(await q.extend("g", "crashes", id, 1000), true);
  assert.equal(await q.extend("g", "other", id, 1000), false);
  await sleep(250);
  assert.deepEqual(await q.pop("g", "other"), []); // the extended lease still holds
  await untilLeaseEnds(client, key, "g", id);
  const [again] = await q.pop("g", "other", { leaseMs: 100, maxDeliveries: 2 });
  assert.deepEqual([again.id, again.deliveries], [id, 2]);
  await sleep(150);
  assert.deepEqual(await q.pop("g", "other", { maxDeliveries: 2 }), []);
  const [[, fields]] = await raw(client, ["XRANGE", `${key}:dead`, "-", "+"]);
  assert.deepEqual(fields.slice(0, 6), ["job", id, "payload", "poison", "deliveries", "2"]);
  assert.equal((await q.stats("g")).dead, 1);
  assert.equal(await q.redrive("g", { count: 10 }), 1);
  const [redriven] = await q.pop("g", "other");
  assert.deepEqual([redriven.payload, redriven.deliveries], ["poison", 1]);
});

queueTest("a blocking pop is woken by a push, and times out with []", "block", async ({ q }) => {
  const popping = q.pop("g", "c", { blockMs: 5000 });
  await sleep(200);
  const id = await q.push("wake");
  assert.deepEqual((await popping).map((j) => j.id), [id]);
  const started = Date.now();
  assert.deepEqual(await q.pop("g", "c", { blockMs: 150 }), []);
  assert.ok(Date.now() - started >= 140);
});

queueTest("bad input rejects with the server's error and writes nothing", "bad", async ({ client, key, q }) => {
  await assert.rejects(q.pop("g", "c", { leaseMs: 0 }), (err) => err instanceof PatternsError && /lease_ms must be a positive integer/.test(err.message));
  await assert.rejects(q.ack("g", "nope"), /job_id must be a stream id/);
  assert.equal(Number(await raw(client, ["EXISTS", key])), 0);
}, everyCombination);

queueTest("worker: acks what succeeds, retries what fails with backoff until it is dead", "worker", async ({ client, key, q }) => {
  const ok = [];
  for (let i = 0; i < 6; i++) ok.push(await q.push(`ok-${i}`));
  const bad = await q.push("fail");
  const seen = [];
  const errors = [];
  const worker = q.worker("g", "w", async (job) => {
    seen.push(job);
    await sleep(5);
    if (job.payload === "fail") throw new Error("always fails");
  }, { concurrency: 3, maxDeliveries: 3, pollMs: 100, retryMs: 20, onError: (err, job) => errors.push([err.message, job?.id]) });
  worker.start();
  await waitUntil(async () => (await q.stats("g")).dead === 1 && worker.processed === 6, "the jobs to settle");
  await worker.stop();
  assert.deepEqual(seen.filter((j) => j.payload !== "fail").map((j) => j.id).sort(), ok.sort());
  assert.deepEqual(seen.filter((j) => j.payload === "fail").map((j) => j.deliveries), [1, 2, 3]);
  assert.equal(worker.failed, 3);
  assert.deepEqual(errors, [["always fails", bad], ["always fails", bad], ["always fails", bad]]);
  const [[, fields]] = await raw(client, ["XRANGE", `${key}:dead`, "-", "+"]);
  assert.equal(fields[1], bad);
  assert.equal(Number(await raw(client, ["XLEN", key])), 0);
});

queueTest("worker: renews the lease of a slow job, and a stopped worker pops nothing", "slow", async ({ client, key, q }) => {
  const id = await q.push("slow");
  let done = false;
  const worker = q.worker("g", "slow", async () => {
    await sleep(1200); // six leases of 200 ms
    done = true;
  }, { leaseMs: 200, pollMs: 100 }).start();
  await waitUntil(async () => {
    const pending = await raw(client, ["XPENDING", key, "g", "-", "+", "10"]).catch(() => []);
    return pending.some(([job, consumer]) => job === id && consumer === "slow");
  }, "the worker to hold the job");
  while (!done) {
    assert.deepEqual(await q.pop("g", "thief"), []);
    await sleep(50);
  }
  await worker.stop(); // waits for the job in hand to be acked
  assert.deepEqual([worker.processed, worker.failed], [1, 0]);
  const stats = await q.stats("g");
  assert.deepEqual([stats.ready, stats.pending], [0, 0]);
  await q.push("after");
  await sleep(300);
  assert.equal((await q.stats("g")).ready, 1);
});

queueTest("worker: a lease lost while the handler runs is reported", "stolen", async ({ client, key, q }) => {
  const id = await q.push("stolen");
  const errors = [];
  const worker = q.worker("g", "slow", () => sleep(800), { leaseMs: 150, pollMs: 100, onError: (err, job) => errors.push([err.message, job?.id]) }).start();
  await waitUntil(async () => {
    const pending = await raw(client, ["XPENDING", key, "g", "-", "+", "10"]).catch(() => []);
    return pending.some(([job, consumer]) => job === id && consumer === "slow");
  }, "the worker to hold the job");
  await raw(client, ["XCLAIM", key, "g", "thief", "0", id]); // taken behind its back
  await waitUntil(async () => errors.length > 0, "the loss to be reported");
  await worker.stop();
  assert.deepEqual(errors[0], [`the lease of job ${id} was lost while it was handled`, id]);
});
