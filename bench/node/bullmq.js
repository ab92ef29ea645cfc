// BullMQ's side of the queue bench (bench/cases/queue.py drives it): one mode per process,
//   node bullmq.js <port> <mode> <jobs> <payload> <concurrency>
// It connects, sets up outside the timing, prints "ready", waits for a line on stdin (the
// driver reads the server's counters then), runs, and prints one JSON line of results.
// - throughput: adds <jobs> jobs (addBulk, batches of 100), then one Worker (of <concurrency>,
//   an empty processor, completed jobs removed) drains them; jobs/s over both phases.
// - latency: a Worker (of <concurrency>) waits, idle, blocked on the server; <jobs> jobs are
//   added 2 ms apart, each carrying its send time; push-to-processor latency in ms.
// - memory: adds <jobs> waiting jobs (the driver measures the server's memory around it).
"use strict";
const readline = require("node:readline");
const { Queue, Worker } = require("bullmq");

const [port, mode, jobsArg, payload, concurrencyArg] = process.argv.slice(2);
const jobs = Number(jobsArg);
const concurrency = Number(concurrencyArg);
const connection = { host: "127.0.0.1", port: Number(port), maxRetriesPerRequest: null };
const BATCH = 100;

function go() {
  process.stdout.write("ready\n");
  const rl = readline.createInterface({ input: process.stdin });
  return new Promise((resolve) => rl.once("line", () => { rl.close(); resolve(); }));
}

async function addAll(queue) {
  for (let i = 0; i < jobs; i += BATCH) {
    const n = Math.min(BATCH, jobs - i);
    await queue.addBulk(Array.from({ length: n }, () => ({ name: "job", data: payload, opts: { removeOnComplete: true } })));
  }
}

function drained(worker, count) {
  let done = 0;
  return new Promise((resolve, reject) => {
    worker.on("completed", () => { if (++done === count) resolve(); });
    worker.on("failed", (_job, err) => reject(err));
    worker.on("error", reject);
  });
}

async function throughput(queue) {
  await go();
  const started = process.hrtime.bigint();
  await addAll(queue);
  const worker = new Worker(queue.name, async () => undefined, { connection, concurrency });
  await drained(worker, jobs);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await worker.close();
  return { jobs, seconds };
}

async function latency(queue) {
  const latencies = [];
  const worker = new Worker(queue.name, async (job) => {
    latencies.push(Number(process.hrtime.bigint() - BigInt(job.data.sent)) / 1e6);
  }, { connection, concurrency });
  await worker.waitUntilReady();
  await new Promise((r) => setTimeout(r, 200)); // the worker is blocked, waiting
  await go();
  for (let i = 0; i < jobs; i++) {
    await queue.add("job", { payload, sent: String(process.hrtime.bigint()) }, { removeOnComplete: true });
    await new Promise((r) => setTimeout(r, 2));
  }
  const deadline = Date.now() + 30000;
  while (latencies.length < jobs && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  await worker.close();
  return { latencies_ms: latencies };
}

async function memory(queue) {
  const warm = new Queue(`${queue.name}-warm`, { connection });
  await warm.add("job", payload); // loads BullMQ's scripts before the baseline
  await warm.obliterate({ force: true });
  await warm.close();
  await go();
  for (let i = 0; i < jobs; i += BATCH) {
    const n = Math.min(BATCH, jobs - i);
    await queue.addBulk(Array.from({ length: n }, () => ({ name: "job", data: payload })));
  }
  return { jobs, waiting: await queue.getWaitingCount() };
}

async function main() {
  const queue = new Queue(`bench-${mode}`, { connection });
  await queue.obliterate({ force: true });
  const run = { throughput, latency, memory }[mode];
  if (!run) throw new Error(`unknown mode ${mode}`);
  const result = await run(queue);
  await queue.close();
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
