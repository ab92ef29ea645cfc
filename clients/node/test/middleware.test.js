// The rate-limit middleware through a real Express server (over HTTP) and Fastify's inject,
// on the module and the twin, with both clients.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const express = require("express");
const Fastify = require("fastify");
const { startTargets, everyCombination } = require("./servers");
const { expressRateLimit, fastifyRateLimit } = require("..");

let env;
test.before(async () => { env = await startTargets(); });
test.after(() => env?.stopAll());

const targets = () => env.targets.filter((t) => t.name === "redis-7 module" || t.name === "valkey-8 twin");

function listen(app) {
  return new Promise((resolve) => {
    const server = app.listen(0, "127.0.0.1", () => resolve(server));
  });
}

test("Express: RateLimit headers on every response, 429 with Retry-After past the limit", async () => {
  await everyCombination(targets(), async ({ p, prefix }) => {
    const app = express();
    app.use(expressRateLimit({
      key: (req) => `${prefix}api:${req.get("x-user")}`,
      limit: (key) => p.tokenBucket(key, { capacity: 2, rate: 1, periodMs: 60000 }),
    }));
    app.get("/", (_req, res) => res.json({ ok: true }));
    const server = await listen(app);
    try {
      const url = `http://127.0.0.1:${server.address().port}/`;
      const get = (user) => fetch(url, { headers: { "x-user": user } });
      const first = await get("alice");
      assert.equal(first.status, 200);
      assert.deepEqual(await first.json(), { ok: true });
      assert.equal(first.headers.get("ratelimit-limit"), "2");
      assert.equal(first.headers.get("ratelimit-remaining"), "1");
      assert.equal(first.headers.get("retry-after"), null);
      assert.equal((await get("alice")).status, 200);
      const denied = await get("alice");
      assert.equal(denied.status, 429);
      assert.equal(denied.headers.get("ratelimit-remaining"), "0");
      assert.equal(denied.headers.get("retry-after"), "60");
      assert.equal(denied.headers.get("ratelimit-reset"), "120");
      const body = await denied.json();
      assert.equal(body.error, "Too Many Requests");
      assert.ok(body.retryAfterMs > 55000 && body.retryAfterMs <= 60000);
      assert.equal((await get("bob")).status, 200, "another key has its own bucket");
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

test("Express: a Redis error goes to the error handler", async () => {
  await everyCombination(targets(), async ({ p, prefix }) => {
    const app = express();
    app.use(expressRateLimit({ key: () => `${prefix}bad`, limit: (key) => p.fixedWindow(key, { limit: 0, windowMs: 1000 }) }));
    app.get("/", (_req, res) => res.send("unreachable"));
    app.use((err, _req, res, _next) => res.status(503).send(err.message));
    const server = await listen(app);
    try {
      const res = await fetch(`http://127.0.0.1:${server.address().port}/`);
      assert.equal(res.status, 503);
      assert.equal(await res.text(), "ERR limit must be a positive integer");
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

test("Fastify: the onRequest hook answers 429 with the same headers", async () => {
  await everyCombination(targets(), async ({ p, prefix }) => {
    const app = Fastify();
    app.addHook("onRequest", fastifyRateLimit({
      key: (request) => `${prefix}fastify:${request.ip}`,
      limit: (key) => p.slidingWindow(key, { limit: 1, windowMs: 60000, exact: true }),
      body: (result) => ({ message: "slow down", retryAfterMs: result.retryAfterMs }),
    }));
    app.get("/", async () => ({ ok: true }));
    try {
      const first = await app.inject({ method: "GET", url: "/" });
      assert.equal(first.statusCode, 200);
      assert.equal(first.headers["ratelimit-limit"], "1");
      assert.equal(first.headers["ratelimit-remaining"], "0");
      const denied = await app.inject({ method: "GET", url: "/" });
      assert.equal(denied.statusCode, 429);
      assert.equal(denied.headers["retry-after"], "60");
      assert.equal(denied.json().message, "slow down");
    } finally {
      await app.close();
    }
  });
});
