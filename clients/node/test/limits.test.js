// limitAll and refund where the server checks every key a call declares: on a Cluster node
// (all keys in one slot, or CROSSSLOT) and for an ACL user whose key patterns leave one limit's
// key out (NOPERM). Module and twin, on Redis 7 and Valkey 8, with both clients; a refused call
// writes nothing.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const { startTargets, everyCombination, raw, CLIENTS, TARGETS } = require("./servers");
const { createPatterns, PatternsError } = require("..");

const CLUSTER_TARGETS = TARGETS.map((t) => ({ ...t, name: `${t.name} (Cluster)`, cluster: true }));

let env;
let clusterEnv;
test.before(async () => {
  env = await startTargets();
  clusterEnv = await startTargets(CLUSTER_TARGETS);
});
test.after(() => {
  env?.stopAll();
  clusterEnv?.stopAll();
});

const bucket = (key) => ({ key, tokenBucket: { capacity: 10, rate: 1, periodMs: 60000, cost: 3 } });
const window = (key) => ({ key, fixedWindow: { limit: 5, windowMs: 60000 } });

/** The code of the server error `promise` rejects with (a PatternsError). */
async function refusal(promise) {
  const err = await promise.then(() => assert.fail("expected a refusal"), (e) => e);
  assert.ok(err instanceof PatternsError, String(err));
  return err.code;
}

/** The stored values of `keys` (null where absent), read as the admin. */
function stored(client, keys) {
  return Promise.all(keys.map((k) => raw(client, ["GET", k])));
}

/**
 * limitAll and refund on the limits of `a` and `b` run; with `outside` in b's place, both are
 * refused with the error `code` and write nothing.
 */
async function assertAllOrNothing(p, client, [a, b, outside], code) {
  const all = await p.limitAll([bucket(a), window(b)]);
  assert.deepEqual([all.allowed, all.limits.map((l) => l.remaining)], [true, [7, 4]]);
  const before = await stored(client, [a, b]);
  assert.equal(await refusal(p.limitAll([bucket(a), window(outside)])), code);
  assert.equal(await refusal(p.refund([bucket(a), window(outside)])), code);
  assert.deepEqual(await stored(client, [a, b, outside]), [...before, null]);
  assert.deepEqual(await p.refund([bucket(a), window(b)]), [10, 5]);
}

test("Cluster: limitAll and refund run when their keys share a slot, and are refused across slots", async () => {
  await everyCombination(clusterEnv.targets, async ({ p, client, prefix, target }) => {
    assert.equal(p.backend, target.backend);
    const [a, b, elsewhere] = [`${prefix}rl:{u1}:a`, `${prefix}rl:{u1}:b`, `${prefix}rl:{u2}:c`];
    const slot = (k) => raw(client, ["CLUSTER", "KEYSLOT", k]).then(Number);
    assert.equal(await slot(a), await slot(b));
    assert.notEqual(await slot(a), await slot(elsewhere));
    await assertAllOrNothing(p, client, [a, b, elsewhere], "CROSSSLOT");
  });
});

test("ACL: limitAll and refund are refused with NOPERM when one limit's key is outside the user's patterns", async () => {
  await everyCombination(env.targets, async ({ p: admin, client, clientName, prefix, target }) => {
    // The admin's Patterns loaded the twin where there is no module; the user only runs it.
    assert.equal(admin.backend, target.backend);
    const user = `limits-${clientName}`;
    await raw(client, ["ACL", "SETUSER", user, "on", ">pw", `~${prefix}rl:*`, "&*", "+@all"]);
    const [a, b, other] = [`${prefix}rl:{u}:a`, `${prefix}rl:{u}:b`, `${prefix}other:{u}`];
    const factory = CLIENTS[clientName];
    const limited = await factory.connect(target.server.url.replace("redis://", `redis://${user}:pw@`));
    try {
      const p = await createPatterns(limited);
      assert.equal(p.backend, target.backend);
      await assertAllOrNothing(p, client, [a, b, other], "NOPERM");
      await p.close();
    } finally {
      await factory.close(limited);
    }
  });
});
