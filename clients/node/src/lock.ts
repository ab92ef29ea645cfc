import { LockNotAcquiredError } from "./errors";
import { asRecord, numbers, type Call } from "./backend";
import { randomId, waitWithin, type Runner } from "./runner";

export interface LockOptions {
  /** The lease, default 30000 ms. */
  ttlMs?: number;
  /** How long acquire() waits for the lock: 0 (default) tries once, Infinity waits without limit. */
  waitMs?: number;
  /** Extends the lease every ttlMs / 3 while held; a failed extension stops it and sets `lost`. */
  autoExtend?: boolean;
  /** Who holds the lock; default 128 random bits. Only the owner can release or extend it. */
  owner?: string;
  /** Called once when auto-extension fails (the lock may now belong to someone else). */
  onLost?: (err?: unknown) => void;
}

export interface SemaphoreOptions {
  limit: number;
  /** How long a permit lasts, default 30000 ms. */
  ttlMs?: number;
  /** As for locks: 0 tries once, Infinity waits without limit. */
  waitMs?: number;
  owner?: string;
}

/** The lock info `LOCK.INFO` reports. */
export interface LockInfo {
  owner: string;
  token: number;
  ttlMs: number;
  holds: number;
  waiters: number;
}

/**
 * Renews a hold every third of its lease until stopped; a renewal that fails (or finds the hold
 * gone) stops it and calls `onLost` once. Shared by Lock and RWLock.
 */
class Extender {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ttlMs: () => number,
    private readonly renew: () => Promise<boolean>,
    private readonly onLost: (failure: unknown) => void,
  ) {}

  /** Starts renewing, unless it already is. */
  start(): void {
    if (!this.timer) this.schedule();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    this.timer = setTimeout(() => void this.renewOnTimer(), Math.max(1, Math.floor(this.ttlMs() / 3)));
    this.timer.unref();
  }

  private async renewOnTimer(): Promise<void> {
    let failure: unknown;
    try {
      if (await this.renew()) {
        if (this.timer) this.schedule();
        return;
      }
    } catch (err) {
      failure = err;
    }
    if (!this.timer) return; // stopped meanwhile
    this.stop();
    this.onLost(failure);
  }
}

/** What Lock and RWLock share: the owner, the holds taken, the lease and its renewal. */
abstract class LeasedHold {
  readonly key: string;
  readonly owner: string;
  /** The fencing token of the current (write) grant: send it with every write to the protected resource. */
  token: number | undefined;
  /** Set when auto-extension failed: the lease may have ended and another owner got the lock. */
  lost = false;
  protected holds = 0;
  /** Renews the lease while held (autoExtend); a failed renewal sets `lost`. */
  protected readonly extender = new Extender(
    () => this.ttlMs,
    () => this.extend(),
    (failure) => {
      this.lost = true;
      this.options.onLost?.(failure);
    },
  );
  protected readonly ttlMs: number;
  protected readonly waitMs: number;

  constructor(
    protected readonly runner: Runner,
    key: string,
    protected readonly options: LockOptions = {},
  ) {
    this.key = key;
    this.owner = options.owner ?? randomId();
    this.ttlMs = options.ttlMs ?? 30000;
    this.waitMs = options.waitMs ?? 0;
  }

  /** Whether this object holds the lock (as far as it knows: see `lost`). */
  get held(): boolean {
    return this.holds > 0 && !this.lost;
  }

  /** Sets the lease to end ttlMs from now. Resolves to whether this owner still holds it. */
  abstract extend(ttlMs?: number): Promise<boolean>;
}

/** A lock on one key with a fencing token. Reentrant for its owner. */
export class Lock extends LeasedHold {

  /** Takes the lock (or one more hold of it), waiting up to waitMs. Resolves to whether it was granted. */
  async acquire(): Promise<boolean> {
    const call: Call = { command: "LOCK.ACQUIRE", keys: [this.key], args: [this.owner, String(this.ttlMs)] };
    const reply = await waitWithin(this.runner, call, this.waitMs, "WAIT", (r) => r !== null);
    if (reply === null) return false;
    this.token = Number(reply);
    this.holds += 1;
    this.lost = false;
    if (this.options.autoExtend) this.extender.start();
    return true;
  }

  /** Drops one hold; the lock is free when none remain. Resolves to whether a hold was dropped. */
  async release(): Promise<boolean> {
    if (this.holds > 0) this.holds -= 1;
    if (this.holds === 0) this.extender.stop();
    const reply = await this.runner.run({ command: "LOCK.RELEASE", keys: [this.key], args: [this.owner] });
    return Number(reply) === 1;
  }

  /** Sets the lease to end ttlMs from now. Resolves to whether this owner still holds the lock. */
  async extend(ttlMs: number = this.ttlMs): Promise<boolean> {
    const reply = await this.runner.run({ command: "LOCK.EXTEND", keys: [this.key], args: [this.owner, String(ttlMs)] });
    return Number(reply) === 1;
  }

  /** Who holds the lock now, or null when it is free. */
  async info(): Promise<LockInfo | null> {
    return lockInfo(this.runner, this.key);
  }

}

export async function lockInfo(runner: Runner, key: string): Promise<LockInfo | null> {
  const reply = await runner.run({ command: "LOCK.INFO", keys: [key] });
  if (reply === null) return null;
  const info = asRecord(reply);
  return { owner: String(info["owner"]), ttlMs: Number(info["ttl"]), ...numbers(info, ["token", "holds", "waiters"]) };
}

/** Runs fn while holding the lock, releasing it in `finally`; LockNotAcquiredError when not granted. */
export async function withLock<T>(runner: Runner, key: string, options: LockOptions, fn: (lock: Lock) => Promise<T> | T): Promise<T> {
  const lock = new Lock(runner, key, options);
  if (!(await lock.acquire())) throw new LockNotAcquiredError(key, options.waitMs ?? 0);
  try {
    return await fn(lock);
  } finally {
    await lock.release();
  }
}

/** A counting semaphore: at most `limit` owners hold a permit, each for ttlMs. */
export class Semaphore {
  readonly key: string;
  readonly owner: string;
  private readonly ttlMs: number;
  private readonly waitMs: number;

  constructor(
    private readonly runner: Runner,
    key: string,
    private readonly options: SemaphoreOptions,
  ) {
    this.key = key;
    this.owner = options.owner ?? randomId();
    this.ttlMs = options.ttlMs ?? 30000;
    this.waitMs = options.waitMs ?? 0;
  }

  /** Takes a permit (or refreshes this owner's), waiting up to waitMs. */
  async acquire(): Promise<boolean> {
    const call: Call = {
      command: "SEM.ACQUIRE",
      keys: [this.key],
      args: [this.owner, String(this.options.limit), String(this.ttlMs)],
    };
    return Number(await waitWithin(this.runner, call, this.waitMs, "WAIT", (r) => Number(r) === 1)) === 1;
  }

  /** Returns the permit. Resolves to whether this owner held a live one. */
  async release(): Promise<boolean> {
    return Number(await this.runner.run({ command: "SEM.RELEASE", keys: [this.key], args: [this.owner] })) === 1;
  }

  /** The permits in use. */
  async count(): Promise<number> {
    return Number(await this.runner.run({ command: "SEM.COUNT", keys: [this.key] }));
  }

  /** Runs fn holding a permit, returning it in `finally`; LockNotAcquiredError when none is free. */
  async withPermit<T>(fn: () => Promise<T> | T): Promise<T> {
    if (!(await this.acquire())) throw new LockNotAcquiredError(this.key, this.waitMs);
    try {
      return await fn();
    } finally {
      await this.release();
    }
  }
}

/** Writes fields to the resource hash unless a newer token has written it: the storage-side fence. */
export async function fencedHset(
  runner: Runner,
  resource: string,
  token: number,
  fields: Record<string, string | number>,
): Promise<boolean> {
  const pairs = Object.entries(fields).flatMap(([field, value]) => [field, String(value)]);
  const reply = await runner.run({ command: "LOCK.FENCEDHSET", keys: [resource], args: [String(token), ...pairs] });
  return Number(reply) === 1;
}

export type RWLockMode = "read" | "write";

/** The read/write lock info `RWLOCK.INFO` reports. */
export interface RWLockInfo {
  mode: RWLockMode;
  /** The writer (null in read mode). */
  owner: string | null;
  /** The writer's fencing token (null in read mode). */
  token: number | null;
  /** The live read holds. */
  readers: number;
  /** Ms until the write lease or the last read lease ends. */
  ttlMs: number;
  waiters: number;
}

/**
 * A read/write lock: many READ holds or one WRITE hold (with a fencing token, reentrant for its
 * owner). A READ acquired again refreshes its lease; there is no upgrade or downgrade.
 */
export class RWLock extends LeasedHold {
  /** The mode held, undefined when not held. The token is undefined when holding for read. */
  mode: RWLockMode | undefined;

  /** Takes a hold in mode, waiting up to waitMs (module: FIFO on the server; twin: polling). */
  async acquire(mode: RWLockMode): Promise<boolean> {
    const args = [this.owner, String(this.ttlMs), mode === "write" ? "WRITE" : "READ"];
    const call: Call = { command: "RWLOCK.ACQUIRE", keys: [this.key], args };
    const reply = await waitWithin(this.runner, call, this.waitMs, "WAIT", (r) => r !== null);
    if (reply === null) return false;
    if (mode === "write") {
      this.token = Number(reply);
      this.holds += 1;
    } else {
      this.token = undefined;
      this.holds = 1;
    }
    this.mode = mode;
    this.lost = false;
    if (this.options.autoExtend) this.extender.start();
    return true;
  }

  /** Takes (or refreshes) a READ hold, shared with other readers. */
  acquireRead(): Promise<boolean> {
    return this.acquire("read");
  }

  /** Takes the WRITE hold (or one more hold of it), exclusive, with a fencing token. */
  acquireWrite(): Promise<boolean> {
    return this.acquire("write");
  }

  /** Drops one hold (the read hold, or one write hold). Resolves to whether a hold was dropped. */
  async release(): Promise<boolean> {
    if (this.holds > 0) this.holds -= 1;
    if (this.holds === 0) {
      this.extender.stop();
      this.mode = undefined;
    }
    const reply = await this.runner.run({ command: "RWLOCK.RELEASE", keys: [this.key], args: [this.owner] });
    return Number(reply) === 1;
  }

  /** Sets the lease of this owner's hold to end ttlMs from now. Resolves to whether it still holds it. */
  async extend(ttlMs: number = this.ttlMs): Promise<boolean> {
    const reply = await this.runner.run({ command: "RWLOCK.EXTEND", keys: [this.key], args: [this.owner, String(ttlMs)] });
    return Number(reply) === 1;
  }

  /** Who holds the lock now, or null when it is free. */
  info(): Promise<RWLockInfo | null> {
    return rwlockInfo(this.runner, this.key);
  }

  /** Runs fn holding a READ hold, releasing it in `finally`; LockNotAcquiredError when not granted. */
  withRead<T>(fn: (lock: RWLock) => Promise<T> | T): Promise<T> {
    return this.withHold("read", fn);
  }

  /** Runs fn holding the WRITE hold, releasing it in `finally`; LockNotAcquiredError when not granted. */
  withWrite<T>(fn: (lock: RWLock) => Promise<T> | T): Promise<T> {
    return this.withHold("write", fn);
  }

  private async withHold<T>(mode: RWLockMode, fn: (lock: RWLock) => Promise<T> | T): Promise<T> {
    if (!(await this.acquire(mode))) throw new LockNotAcquiredError(this.key, this.waitMs);
    try {
      return await fn(this);
    } finally {
      await this.release();
    }
  }

}

export async function rwlockInfo(runner: Runner, key: string): Promise<RWLockInfo | null> {
  const reply = await runner.run({ command: "RWLOCK.INFO", keys: [key] });
  if (reply === null) return null;
  const info = asRecord(reply);
  const owner = info["owner"];
  const token = info["token"];
  return {
    mode: String(info["mode"]) as RWLockMode,
    owner: owner === null || owner === undefined ? null : String(owner),
    token: token === null || token === undefined ? null : Number(token),
    ttlMs: Number(info["ttl"]),
    ...numbers(info, ["readers", "waiters"]),
  };
}
