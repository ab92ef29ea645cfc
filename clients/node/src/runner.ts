import { randomBytes } from "node:crypto";
import type { Connection } from "./adapter";
import { argsFor, callKeys, type Backend, type Call } from "./backend";

/** What the families share: the backend, the caller's connection and dedicated ones. */
export interface Runner {
  readonly backend: Backend;
  /** Runs one command on the caller's connection, in the backend's form. */
  run(call: Call): Promise<unknown>;
  /** Runs fn on a dedicated connection (for blocking commands), never on the caller's. */
  blocking<T>(fn: (conn: Connection) => Promise<T>): Promise<T>;
  /** Subscribes a dedicated connection; closed by `close()` at the latest. */
  subscribe(channel: string, onMessage: (message: string) => void): Promise<() => Promise<void>>;
  /** Keeps track of work started in the background (cache refreshes) until it settles. */
  track(work: Promise<unknown>): void;
}

export function send(conn: Connection, backend: Backend, call: Call): Promise<unknown> {
  return conn.send(argsFor(backend, call), callKeys(call));
}

/** 128 bits from the CSPRNG as 22 characters of base64url: session ids, owners, leases. */
export function randomId(): string {
  return randomBytes(16).toString("base64url");
}

/** XFetch's draw for the twin: an integer from 1 to 2^53 (rand = draw / 2^53). */
export function randomDraw(): string {
  const bits = randomBytes(8).readBigUInt64BE() & ((1n << 53n) - 1n);
  return String(bits + 1n);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// The twin cannot block: it polls, with a backoff doubling from 5 ms to 100 ms (jittered).
const POLL_FIRST_MS = 5;
const POLL_MAX_MS = 100;

/**
 * Runs `call` until `granted` or waitMs passes (0 tries once, Infinity waits without limit).
 * On the module, one call with `<option> <waitMs>` (WAIT, BLOCK) on a dedicated connection,
 * waiting on the server (FIFO); on the twin, which cannot block, polling with backoff.
 */
export async function waitWithin(
  runner: Runner,
  call: Call,
  waitMs: number,
  option: "WAIT" | "BLOCK",
  granted: (reply: unknown) => boolean,
): Promise<unknown> {
  if (waitMs <= 0) return runner.run(call);
  if (runner.backend === "module") {
    const wait = Number.isFinite(waitMs) ? String(Math.ceil(waitMs)) : "0";
    const blocking: Call = { ...call, args: [...(call.args ?? []), option, wait] };
    return runner.blocking((conn) => send(conn, "module", blocking));
  }
  const deadline = Date.now() + waitMs;
  let delay = POLL_FIRST_MS;
  for (;;) {
    const reply = await runner.run(call);
    const left = deadline - Date.now();
    if (granted(reply) || left <= 0) return reply;
    await sleep(Math.min(left, delay / 2 + Math.random() * (delay / 2)));
    delay = Math.min(delay * 2, POLL_MAX_MS);
  }
}
