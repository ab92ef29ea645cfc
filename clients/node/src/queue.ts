import { asRecord, numbers } from "./backend";
import { sleep, waitWithin, type Runner } from "./runner";

/** A job `QUEUE.POP` delivered: its id (a stream id), payload and deliveries (this one included). */
export interface Job {
  id: string;
  payload: string;
  deliveries: number;
}

/** `QUEUE.STATS` for one group. */
export interface QueueStats {
  ready: number;
  /** Pushed with a delay, or nacked with one, and not yet due. */
  delayed: number;
  /** Delivered and not completed. */
  pending: number;
  dead: number;
  consumers: number;
}

export interface PushOptions {
  /** Deliverable this many ms from now. */
  delayMs?: number;
  /** A push whose dedupe id was pushed within dedupeTtlMs adds nothing and resolves to the first job's id. */
  dedupe?: string;
  /** Default 3600000 (1 h). */
  dedupeTtlMs?: number;
}

export interface PopOptions {
  /** At most this many jobs, default 1. */
  count?: number;
  /** How long to wait for a job: 0 (default) tries once, Infinity waits without limit. */
  blockMs?: number;
  /** The lease, default (the server's) 30000 ms. */
  leaseMs?: number;
  /** A job that would be delivered more often goes to the dead letters; default (the server's) 10. */
  maxDeliveries?: number;
}

export interface WorkerOptions {
  /** Jobs handled at once, default 1. */
  concurrency?: number;
  /** Each job's lease, renewed every third of it while the handler runs; default 30000 ms. */
  leaseMs?: number;
  maxDeliveries?: number;
  /** How long one pop waits for a job, which bounds how long stop() takes; default 1000 ms. */
  pollMs?: number;
  /** A failed job is retried after retryMs doubled per earlier delivery, at most maxRetryMs (jittered). Default 1000. */
  retryMs?: number;
  /** Default 60000. */
  maxRetryMs?: number;
  /** Called with a handler's error or a lost lease and the job, or with a failed pop, ack, nack or renewal; default: a process warning. */
  onError?: (err: unknown, job?: Job) => void;
}

const DEFAULT_DEDUPE_TTL_MS = 3600000;

function toJob(raw: unknown): Job {
  const [id, payload, deliveries] = raw as [unknown, unknown, unknown];
  return { id: String(id), payload: String(payload), deliveries: Number(deliveries) };
}

/** `QUEUE.*` on one queue (a stream): jobs with leases, retries, dead letters, delays and dedupe. */
export class Queue {
  constructor(
    private readonly runner: Runner,
    readonly key: string,
  ) {}

  /** Adds a job; resolves to its id. */
  async push(payload: string, options: PushOptions = {}): Promise<string> {
    const args = [payload];
    if (options.delayMs !== undefined) args.push("DELAY", String(options.delayMs));
    if (options.dedupe !== undefined) {
      args.push("DEDUPE", options.dedupe, String(options.dedupeTtlMs ?? DEFAULT_DEDUPE_TTL_MS));
    }
    return String(await this.runner.run({ command: "QUEUE.PUSH", keys: [this.key], args }));
  }

  /**
   * Up to `count` jobs for consumer, leased for leaseMs; [] when there is none. With blockMs
   * the module waits on the server (FIFO per group, on a dedicated connection); the twin,
   * which cannot block, polls with backoff.
   */
  async pop(group: string, consumer: string, options: PopOptions = {}): Promise<Job[]> {
    const args = [group, consumer, "COUNT", String(options.count ?? 1)];
    if (options.leaseMs !== undefined) args.push("LEASE", String(options.leaseMs));
    if (options.maxDeliveries !== undefined) args.push("MAXDELIVERIES", String(options.maxDeliveries));
    const call = { command: "QUEUE.POP", keys: [this.key], args };
    const reply = await waitWithin(this.runner, call, options.blockMs ?? 0, "BLOCK", (r) => r !== null);
    return reply === null ? [] : (reply as unknown[]).map(toJob);
  }

  /** Completes jobs; resolves to how many were pending. */
  async ack(group: string, ...jobIds: string[]): Promise<number> {
    return Number(await this.runner.run({ command: "QUEUE.ACK", keys: [this.key], args: [group, ...jobIds] }));
  }

  /** Gives a job back, delivered again after delayMs; false when it was not pending. */
  async nack(group: string, jobId: string, options: { delayMs?: number } = {}): Promise<boolean> {
    const args = [group, jobId];
    if (options.delayMs !== undefined) args.push("DELAY", String(options.delayMs));
    return Number(await this.runner.run({ command: "QUEUE.NACK", keys: [this.key], args })) === 1;
  }

  /** Ends consumer's lease of the job leaseMs from now; false when it no longer holds it. */
  async extend(group: string, consumer: string, jobId: string, leaseMs: number): Promise<boolean> {
    const args = [group, consumer, jobId, String(leaseMs)];
    return Number(await this.runner.run({ command: "QUEUE.EXTEND", keys: [this.key], args })) === 1;
  }

  /** Moves up to `count` (the server's default: 100) dead letters back as new jobs; resolves to how many. */
  async redrive(group: string, options: { count?: number } = {}): Promise<number> {
    const args = options.count === undefined ? [group] : [group, "COUNT", String(options.count)];
    return Number(await this.runner.run({ command: "QUEUE.REDRIVE", keys: [this.key], args }));
  }

  async stats(group: string): Promise<QueueStats> {
    const f = asRecord(await this.runner.run({ command: "QUEUE.STATS", keys: [this.key], args: [group] }));
    return numbers(f, ["ready", "delayed", "pending", "dead", "consumers"]);
  }

  /** A worker running handler(job) for the group's jobs: call start(), and stop() when done. */
  worker(group: string, consumer: string, handler: (job: Job) => unknown, options: WorkerOptions = {}): Worker {
    return new Worker(this, group, consumer, handler, options);
  }
}

/**
 * Runs handler(job) in `concurrency` loops, each popping one job at a time as consumer. The
 * leases of the jobs in hand are renewed every third of leaseMs. A handler that resolves acks
 * its job; one that throws or rejects nacks it, retried after retryMs doubled per earlier
 * delivery (at most maxRetryMs, half to all of it at random), until it dead-letters after
 * maxDeliveries. stop() pops nothing more, waits for the jobs in hand to be acked or nacked,
 * and takes up to pollMs longer (a pending pop's wait).
 */
export class Worker {
  /** Jobs acked, and jobs nacked after their handler failed. */
  processed = 0;
  failed = 0;
  private readonly held = new Map<string, Job>();
  private loops: Promise<void>[] = [];
  private renewal: NodeJS.Timeout | undefined;
  private stopping = false;
  private readonly leaseMs: number;
  private readonly pollMs: number;
  private readonly onError: (err: unknown, job?: Job) => void;

  constructor(
    readonly queue: Queue,
    readonly group: string,
    readonly consumer: string,
    private readonly handler: (job: Job) => unknown,
    private readonly options: WorkerOptions = {},
  ) {
    if ((options.concurrency ?? 1) < 1) throw new RangeError("concurrency must be at least 1");
    this.leaseMs = options.leaseMs ?? 30000;
    this.pollMs = options.pollMs ?? 1000;
    this.onError = options.onError ?? ((err: unknown) => process.emitWarning(err as Error));
  }

  start(): this {
    if (this.loops.length) throw new Error("the worker is already running");
    this.stopping = false;
    this.loops = Array.from({ length: this.options.concurrency ?? 1 }, () => this.loop());
    this.renewal = setInterval(() => void this.renew(), Math.max(1, Math.floor(this.leaseMs / 3)));
    return this;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
    this.loops = [];
    clearInterval(this.renewal);
    this.renewal = undefined;
  }

  private async loop(): Promise<void> {
    const pop = { count: 1, blockMs: this.pollMs, leaseMs: this.leaseMs, maxDeliveries: this.options.maxDeliveries };
    while (!this.stopping) {
      try {
        for (const job of await this.queue.pop(this.group, this.consumer, pop)) await this.handle(job);
      } catch (err) {
        this.onError(err);
        if (!this.stopping) await sleep(this.pollMs);
      }
    }
  }

  private async handle(job: Job): Promise<void> {
    this.held.set(job.id, job);
    let done = true;
    try {
      await this.handler(job);
    } catch (err) {
      done = false;
      this.onError(err, job);
    } finally {
      this.held.delete(job.id);
    }
    if (done) {
      await this.queue.ack(this.group, job.id);
      this.processed += 1;
    } else {
      await this.queue.nack(this.group, job.id, { delayMs: this.retryDelayMs(job.deliveries) });
      this.failed += 1;
    }
  }

  private retryDelayMs(deliveries: number): number {
    const retryMs = this.options.retryMs ?? 1000;
    const delay = Math.min(retryMs * 2 ** Math.min(deliveries - 1, 32), this.options.maxRetryMs ?? 60000);
    return Math.round(delay * (0.5 + Math.random() / 2));
  }

  private async renew(): Promise<void> {
    for (const [id, job] of [...this.held]) {
      try {
        const kept = await this.queue.extend(this.group, this.consumer, id, this.leaseMs);
        // Still being handled, but no longer this consumer's: it may be handled twice.
        if (!kept && this.held.has(id)) this.onError(new Error(`the lease of job ${id} was lost while it was handled`), job);
      } catch (err) {
        this.onError(err);
      }
    }
  }
}
