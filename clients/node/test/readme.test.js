// The READMEs' examples run as printed: every ```js and ```ts block of clients/node/README.md
// and of the main README.md, each against a fresh server with the module (its URL in
// REDIS_URL; a one-node Cluster's in REDIS_CLUSTER_URL; the repository as working directory),
// must finish without error.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { spawnSync } = require("node:child_process");
const ts = require("typescript");
const { startServer, REPO, raw } = require("./servers");
const Redis = require("ioredis");

const READMES = [path.join(__dirname, "..", "README.md"), path.join(REPO, "README.md")];
const TMP = path.join(__dirname, "tmp");

function blocks(file) {
  const text = fs.readFileSync(file, "utf8");
  const found = [];
  const fence = /^```(js|javascript|ts|typescript)\n([\s\S]*?)^```$/gm;
  for (let m; (m = fence.exec(text)); ) {
    const line = text.slice(0, m.index).split("\n").length;
    found.push({ lang: m[1], code: m[2], where: `${path.relative(REPO, file)}:${line}` });
  }
  return found;
}

/** The block inside an async function (top-level await), as CommonJS; TypeScript transpiled first. */
function program({ lang, code }) {
  const js = lang.startsWith("t") ? ts.transpileModule(code, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 } }).outputText : code;
  return `(async () => {\n${js}\n})().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });\n`;
}

let server;
let cluster;
let admins = [];
test.before(async () => {
  server = await startServer({ bin: "redis-server", withModule: true });
  cluster = await startServer({ bin: "redis-server", withModule: true, cluster: true });
  admins = [new Redis(server.url), new Redis(cluster.url)];
  fs.mkdirSync(TMP, { recursive: true });
});
test.after(() => {
  admins.forEach((admin) => admin.disconnect());
  server?.stop();
  cluster?.stop();
  fs.rmSync(TMP, { recursive: true, force: true });
});

test("both READMEs have Node examples", () => {
  assert.ok(blocks(READMES[0]).length >= 8, "clients/node/README.md");
  assert.ok(blocks(READMES[1]).some((b) => b.code.includes("redis-patterns")), "README.md's Node section");
});

for (const readme of READMES) {
  for (const [i, block] of blocks(readme).entries()) {
    test(`${block.where} runs`, async () => {
      for (const admin of admins) {
        await raw(admin, ["FLUSHALL"]);
        await raw(admin, ["FUNCTION", "FLUSH"]);
      }
      // Inside the package, so `require("redis-patterns")` resolves to it (self-reference).
      const file = path.join(TMP, `readme-${path.basename(readme, ".md")}-${i}.cjs`);
      fs.writeFileSync(file, program(block));
      const run = spawnSync(process.execPath, [file], {
        cwd: REPO,
        env: { ...process.env, REDIS_URL: server.url, REDIS_CLUSTER_URL: cluster.url },
        encoding: "utf8",
        timeout: 30000,
      });
      assert.equal(run.status, 0, `${block.where} failed:\n${run.stdout}\n${run.stderr}`);
    });
  }
}
