// Choosing the backend: the module when loaded (found with MODULE LIST, or by a probe where
// that is denied), else the bundled Lua twin, loaded with FUNCTION LOAD and replaced when the
// server's copy differs.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { startTargets, CLIENTS, REPO, raw } = require("./servers");
const { createPatterns, TWIN_PATH, PatternsError } = require("..");

let env;
test.before(async () => { env = await startTargets(); });
test.after(() => env?.stopAll());

async function withClient(target, clientName, fn, url = target.server.url) {
  const factory = CLIENTS[clientName];
  const client = await factory.connect(url);
  try {
    return await fn(client);
  } finally {
    await factory.close(client);
  }
}

function combinations() {
  return env.targets.flatMap((target) => Object.keys(CLIENTS).map((clientName) => ({ target, clientName })));
}

test("the package ships the repository's dist/patterns.lua unchanged", () => {
  const bundled = fs.readFileSync(TWIN_PATH, "utf8");
  const generated = fs.readFileSync(path.join(REPO, "dist", "patterns.lua"), "utf8");
  assert.ok(bundled === generated, "clients/node/lua/patterns.lua differs from dist/patterns.lua: run `make lua`");
});

test("the twin is loaded once, and replaced when the server's copy differs", async () => {
  const twin = env.targets.find((t) => t.backend === "twin");
  for (const clientName of Object.keys(CLIENTS)) {
    await withClient(twin, clientName, async (client) => {
      const older = fs.readFileSync(TWIN_PATH, "utf8") + "\n-- an older build\n";
      await raw(client, ["FUNCTION", "LOAD", "REPLACE", older]);
      const p = await createPatterns(client);
      assert.equal(p.backend, "twin");
      const code = await libraryCode(client);
      assert.equal(code, fs.readFileSync(TWIN_PATH, "utf8"));
      await raw(client, ["FUNCTION", "DELETE", "patterns"]);
      await createPatterns(client);
      assert.equal(await libraryCode(client), code);
      assert.equal((await (await createPatterns(client)).tokenBucket(`${clientName}:tb`, { capacity: 2, rate: 1 })).remaining, 1);
    });
  }
});

async function libraryCode(client) {
  const [lib] = await raw(client, ["FUNCTION", "LIST", "LIBRARYNAME", "patterns", "WITHCODE"]);
  if (Array.isArray(lib)) return lib[lib.indexOf("library_code") + 1];
  return lib.library_code ?? lib.get?.("library_code");
}

test("with MODULE denied by ACL, auto still finds the module (or its absence) by probing", async () => {
  for (const { target, clientName } of combinations()) {
    await withClient(target, clientName, async (admin) => {
      await raw(admin, ["ACL", "SETUSER", "app", "on", ">secret", "~*", "&*", "+@all", "-module"]);
    });
    const url = target.server.url.replace("redis://", "redis://app:secret@");
    await withClient(target, clientName, async (client) => {
      await assert.rejects(raw(client, ["MODULE", "LIST"]), /NOPERM|no permissions/);
      const p = await createPatterns(client);
      assert.equal(p.backend, target.backend, `${target.name} / ${clientName}`);
      assert.equal((await p.fixedWindow(`${clientName}:acl`, { limit: 3, windowMs: 60000 })).remaining, 2);
    }, url);
  }
});

test("backend: \"twin\" runs the twin on a module server; \"module\" refuses a server without it", async () => {
  for (const { target, clientName } of combinations()) {
    await withClient(target, clientName, async (client) => {
      const twin = await createPatterns(client, { backend: "twin" });
      assert.equal(twin.backend, "twin");
      const r = await twin.tokenBucket(`${clientName}:forced-twin`, { capacity: 5, rate: 1 });
      assert.equal(r.remaining, 4);
      if (target.backend === "module") {
        const mod = await createPatterns(client, { backend: "module" });
        // The twin and the module share keys: one limiter, whichever runs it.
        assert.equal((await mod.tokenBucket(`${clientName}:forced-twin`, { capacity: 5, rate: 1 })).remaining, 3);
      } else {
        await assert.rejects(createPatterns(client, { backend: "module" }), /module is not loaded/);
      }
    });
  }
});

test("server errors reject with PatternsError keeping the server's message; other errors pass through", async () => {
  for (const { target, clientName } of combinations()) {
    await withClient(target, clientName, async (client) => {
      const p = await createPatterns(client);
      const err = await p.sessions.create("", { idleMs: 10, absoluteMs: 10 }).catch((e) => e);
      assert.ok(err instanceof PatternsError, `${target.name} / ${clientName}: ${err}`);
      assert.equal(err.message, "ERR index name cannot carry a session key in its slot");
      assert.equal(err.code, "ERR");
      assert.ok(err.cause instanceof Error);
      await assert.rejects(p.semaphore("s", { limit: 1, owner: "o" }).withPermit(() => { throw new RangeError("mine"); }), RangeError);
    });
  }
  await assert.rejects(createPatterns({}), TypeError);
});

test("an ioredis client with keyPrefix is refused (ioredis would prefix the twin's keys only)", async () => {
  const Redis = require("ioredis");
  const client = new Redis(env.targets[0].server.url, { keyPrefix: "app:", lazyConnect: true });
  await assert.rejects(createPatterns(client), /keyPrefix/);
  client.disconnect();
});
