// The pure parts, without a server: how a call becomes each backend's command, the rate-limit
// headers, scores, and what the client draws for the twin.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const { argsFor, blocksCall } = require("../dist/backend");
const { fromRl, fromThrottle } = require("../dist/ratelimit");
const { parseScore } = require("../dist/leaderboard");
const { randomDraw, randomId } = require("../dist/runner");

test("a call becomes the module's command or the twin's FCALL", () => {
  const fill = { command: "CACHE.FILL", keys: ["k:{1}"], args: ["lease", "v", "1000", "DELTA", "5"], tags: ["t:{1}:a", "t:{1}:b"] };
  assert.deepEqual(argsFor("module", fill), ["CACHE.FILL", "k:{1}", "lease", "v", "1000", "DELTA", "5", "TAGS", "t:{1}:a", "t:{1}:b"]);
  assert.deepEqual(argsFor("twin", fill), ["FCALL", "cache_fill", "3", "k:{1}", "t:{1}:a", "t:{1}:b", "lease", "v", "1000", "DELTA", "5"]);
  const create = { command: "SESSION.CREATE", keys: ["s:{u}"], args: ["10", "20", "f", "v"], twinLead: ["ID"] };
  assert.deepEqual(argsFor("module", create), ["SESSION.CREATE", "s:{u}", "10", "20", "f", "v"]);
  assert.deepEqual(argsFor("twin", create), ["FCALL", "session_create", "1", "s:{u}", "ID", "10", "20", "f", "v"]);
  const set = { command: "CACHE.SET", keys: ["k"], args: ["v", "1"], tags: [] };
  assert.deepEqual(argsFor("module", set), ["CACHE.SET", "k", "v", "1"]);
  assert.deepEqual(argsFor("twin", { command: "CACHE.INVALIDATE", keys: ["a", "b"] }), ["FCALL", "cache_invalidate", "2", "a", "b"]);
});

test("limitAll and refund declare every limit's key: the module's blocks in turn, the twin's KEYS", () => {
  const blocks = [
    { token: "TOKENBUCKET", key: "rl:{u}:a", args: ["10", "1", "1000", "COST", "2"] },
    { token: "FIXEDWINDOW", key: "rl:{u}:b", args: ["5", "60000"] },
  ];
  for (const command of ["RL.ALL", "RL.REFUND"]) {
    const call = blocksCall(command, blocks);
    assert.deepEqual(argsFor("module", call),
      [command, "TOKENBUCKET", "rl:{u}:a", "10", "1", "1000", "COST", "2", "FIXEDWINDOW", "rl:{u}:b", "5", "60000"]);
    assert.deepEqual(argsFor("twin", call), ["FCALL", command.toLowerCase().replace(".", "_"), "2", "rl:{u}:a", "rl:{u}:b",
      "TOKENBUCKET", "10", "1", "1000", "COST", "2", "FIXEDWINDOW", "5", "60000"]);
  }
});

test("headers: RateLimit-* always, Retry-After only when denied with a wait that can end", () => {
  assert.deepEqual(fromRl([1, 10, 9, -1, 200]).headers(), { "RateLimit-Limit": "10", "RateLimit-Remaining": "9", "RateLimit-Reset": "1" });
  assert.deepEqual(fromRl([0, 10, 0, 1001, 5000]).headers(),
    { "RateLimit-Limit": "10", "RateLimit-Remaining": "0", "RateLimit-Reset": "5", "Retry-After": "2" });
  assert.equal(fromRl([0, 10, 10, -1, 0]).headers()["Retry-After"], undefined, "a cost that never fits");
  const cell = fromThrottle([1, 16, 0, 3, 60]);
  assert.deepEqual([cell.allowed, cell.retryAfterMs, cell.resetAfterMs], [false, 3000, 60000]);
  assert.equal(fromThrottle(["0", "16", "15", "-1", "2"]).retryAfterMs, -1);
});

test("scores as the server writes them", () => {
  assert.deepEqual(["300", "-2.5", "inf", "+inf", "-inf", "1e+21", 7].map(parseScore), [300, -2.5, Infinity, Infinity, -Infinity, 1e21, 7]);
});

test("ids are 22 base64url characters and draws integers from 1 to 2^53", () => {
  const ids = new Set(Array.from({ length: 1000 }, randomId));
  assert.equal(ids.size, 1000);
  for (const id of ids) assert.match(id, /^[A-Za-z0-9_-]{22}$/);
  for (let i = 0; i < 1000; i++) {
    const draw = BigInt(randomDraw());
    assert.ok(draw >= 1n && draw <= 2n ** 53n, String(draw));
  }
});
