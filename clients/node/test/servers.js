// Test harness: real redis-server (7.0) and valkey-server (8.0) processes on free loopback
// ports, with the module ($PATTERNS_MODULE, else the workspace's release build) or without it
// (where the client loads the Lua twin). Each server runs in its own temp dir and is killed
// when the test file ends.
"use strict";
const assert = require("node:assert/strict");
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const Redis = require("ioredis");
const { createClient } = require("redis");

const REPO = path.resolve(__dirname, "..", "..", "..");

function modulePath() {
  const file = process.env.PATTERNS_MODULE || path.join(REPO, "target", "release", "libredis_patterns.so");
  if (!fs.existsSync(file)) {
    throw new Error(`module not found at ${file}: run \`make build\` or set PATTERNS_MODULE`);
  }
  return path.resolve(file);
}

/** Resolves to port once bound and released (0: any free port, chosen by the system), or null when taken. */
function bindable(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", () => resolve(null));
    srv.listen(port, "127.0.0.1", () => {
      const bound = srv.address().port;
      srv.close(() => resolve(bound));
    });
  });
}

async function freePort() {
  const port = await bindable(0);
  if (port === null) throw new Error("no free port");
  return port;
}

// A Cluster node's bus listens on its port + 10000: ports up to 55535, below the ephemeral range.
const BUS_OFFSET = 10000;

async function freeClusterPort() {
  for (let tries = 0; tries < 1000; tries++) {
    const port = 12000 + Math.floor(Math.random() * 10000);
    if ((await bindable(port)) !== null && (await bindable(port + BUS_OFFSET)) !== null) return port;
  }
  throw new Error("no free port for a Cluster node");
}

async function waitForPing(port, child) {
  const deadline = Date.now() + 10000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server on port ${port} exited with ${child.exitCode}`);
    const ok = await new Promise((resolve) => {
      const sock = net.connect(port, "127.0.0.1");
      sock.once("connect", () => sock.write("PING\r\n"));
      sock.once("data", (d) => { sock.destroy(); resolve(d.toString().startsWith("+PONG")); });
      sock.once("error", () => { sock.destroy(); resolve(false); });
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`server on port ${port} did not answer PING`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Starts a server: bin "redis-server" or "valkey-server"; withModule loads the module; cluster
 * makes it a Cluster of one primary holding every slot (a plain client reaches every key, and
 * the server still refuses a call whose keys hash to different slots).
 */
async function startServer({ bin, withModule, cluster = false }) {
  const server = await spawnServer({ bin, withModule, clusterEnabled: cluster });
  if (cluster) await ownEverySlot(server.port);
  return server;
}

/**
 * Starts one server process; clusterEnabled starts it as a Cluster node holding no slot yet,
 * extraArgs are more of its command line.
 */
async function spawnServer({ bin, withModule, clusterEnabled, extraArgs = [] }) {
  for (let attempt = 0; ; attempt++) {
    const port = clusterEnabled ? await freeClusterPort() : await freePort();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "patterns-node-"));
    const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir];
    if (withModule) args.push("--loadmodule", modulePath());
    // A node announces its address (a lone one would learn it only from a peer's MEET).
    if (clusterEnabled) args.push("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-announce-ip", "127.0.0.1");
    args.push(...extraArgs);
    const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    let log = "";
    child.stdout.on("data", (d) => { log += d; });
    child.stderr.on("data", (d) => { log += d; });
    try {
      await waitForPing(port, child);
    } catch (err) {
      child.kill("SIGKILL");
      fs.rmSync(dir, { recursive: true, force: true });
      if (attempt < 3 && /Address already in use/.test(log)) continue; // lost the port to someone else
      throw new Error(`${err.message}\n${log}`, { cause: err });
    }
    return {
      port,
      url: `redis://127.0.0.1:${port}`,
      stop() {
        child.kill("SIGKILL");
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  }
}

/** Gives the one-node Cluster on port every slot, and waits until it serves. */
async function ownEverySlot(port) {
  const admin = new Redis(port, "127.0.0.1", { maxRetriesPerRequest: 1 });
  try {
    await admin.call("CLUSTER", "ADDSLOTSRANGE", "0", "16383");
    await waitUntil(async () => /cluster_state:ok/.test(await admin.call("CLUSTER", "INFO")), "the Cluster to serve");
  } finally {
    admin.disconnect();
  }
}

/**
 * Starts a Cluster of three primaries (Redis 7.0, no replicas), each holding a third of the
 * slots, with the module on every node or on none (MODULE LOAD allowed from loopback, to load
 * it on some). Resolves to its nodes and a stop().
 */
async function startCluster({ withModule }) {
  const nodes = [];
  const stop = () => nodes.forEach((node) => node.stop());
  try {
    const extraArgs = ["--enable-module-command", "local"];
    for (let i = 0; i < 3; i++) nodes.push(await spawnServer({ bin: "redis-server", withModule, clusterEnabled: true, extraArgs }));
    const admins = nodes.map((node) => new Redis(node.port, "127.0.0.1", { maxRetriesPerRequest: 1 }));
    try {
      const third = Math.ceil(16384 / 3);
      await Promise.all(admins.map((admin, i) =>
        admin.call("CLUSTER", "ADDSLOTSRANGE", String(i * third), String(Math.min(16383, (i + 1) * third - 1)))));
      for (const node of nodes.slice(1)) await admins[0].call("CLUSTER", "MEET", "127.0.0.1", String(node.port));
      const ready = async (admin) => {
        const info = await admin.call("CLUSTER", "INFO");
        return /cluster_state:ok/.test(info) && /cluster_known_nodes:3/.test(info);
      };
      await waitUntil(async () => (await Promise.all(admins.map(ready))).every(Boolean), "the 3-node Cluster to serve");
    } finally {
      admins.forEach((admin) => admin.disconnect());
    }
  } catch (err) {
    stop();
    throw err;
  }
  return { nodes, port: nodes[0].port, stop };
}

/** Every server the client is tested against: the module on Redis 7 and Valkey 8, and the twin on both. */
const TARGETS = [
  { name: "redis-7 module", bin: "redis-server", withModule: true, backend: "module" },
  { name: "valkey-8 module", bin: "valkey-server", withModule: true, backend: "module" },
  { name: "redis-7 twin", bin: "redis-server", withModule: false, backend: "twin" },
  { name: "valkey-8 twin", bin: "valkey-server", withModule: false, backend: "twin" },
];

/** The two clients, each as a factory of a connected client and a way to close it. */
const CLIENTS = {
  ioredis: {
    async connect(url) { return new Redis(url, { maxRetriesPerRequest: 1 }); },
    async close(client) { client.disconnect(); },
  },
  "node-redis": {
    async connect(url) {
      const client = createClient({ url });
      client.on("error", () => {});
      await client.connect();
      return client;
    },
    async close(client) { client.destroy(); },
  },
};

/** Older majors still in use (Node 18 users): ioredis 5 and node-redis 4, for the family tests. */
const OLDER_CLIENTS = {
  "ioredis@5": {
    async connect(url) { return new (require("ioredis-v5"))(url, { maxRetriesPerRequest: 1 }); },
    async close(client) { client.disconnect(); },
  },
  "node-redis@4": {
    async connect(url) {
      const client = require("redis-v4").createClient({ url });
      client.on("error", () => {});
      await client.connect();
      return client;
    },
    async close(client) { await client.disconnect(); },
  },
};

/** Starts every target; returns them with a stopAll(). */
async function startTargets(targets = TARGETS) {
  const started = [];
  for (const target of targets) started.push({ ...target, server: await startServer(target) });
  return { targets: started, stopAll: () => started.forEach((t) => t.server.stop()) };
}

/** Runs fn(ctx) with a fresh Patterns on one target and client; resolves to [label, result]. */
async function runOn(target, clientName, factory, fn) {
  const { createPatterns } = require("..");
  const client = await factory.connect(target.server.url);
  const p = await createPatterns(client);
  try {
    const prefix = `${clientName}:`;
    return [`${target.name} / ${clientName}`, await fn({ p, client, clientName, target, prefix })];
  } finally {
    await p.close();
    await factory.close(client);
  }
}

/** Runs fn(ctx) for every target and client, one after the other; returns [label, result] pairs. */
async function everyCombination(targets, fn, clients = CLIENTS) {
  const results = [];
  for (const target of targets) {
    for (const [clientName, factory] of Object.entries(clients)) results.push(await runOn(target, clientName, factory, fn));
  }
  return results;
}

/** The same, all at once (for scenarios that mostly sleep; their keys differ per client and server). */
function everyCombinationAtOnce(targets, fn, clients = CLIENTS) {
  return Promise.all(targets.flatMap((target) =>
    Object.entries(clients).map(([clientName, factory]) => runOn(target, clientName, factory, fn))));
}

/** A raw command on either client (for setting up and inspecting keys). */
function raw(client, args) {
  return typeof client.call === "function" ? client.call(...args) : client.sendCommand(args);
}

// A cache entry's value and delta_ms, read from its layout (README, Caching: key layout): a
// format byte and three 7-byte times, then the lease while one is held, then the value.
const ENTRY = `local s = redis.call('GET', KEYS[1])
local format, fresh, stale, delta, at = struct.unpack('>Bi7i7i7', s)
if format >= 0xC2 then
  local _, _, len, token = struct.unpack('>i7i7I4', s, at)
  at = token + len
end
return {string.sub(s, at), delta}`;

async function cacheEntry(client, key) {
  const [value, deltaMs] = await raw(client, ["EVAL", ENTRY, "1", key]);
  return { value, deltaMs: Number(deltaMs) };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `condition` every 5 ms until it holds; fails the test after 10 s, naming `what`. */
async function waitUntil(condition, what) {
  const deadline = Date.now() + 10000;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

module.exports = { sleep, waitUntil, raw, cacheEntry, REPO, TARGETS, CLIENTS, OLDER_CLIENTS, startServer, startCluster, startTargets, everyCombination, everyCombinationAtOnce, modulePath };
