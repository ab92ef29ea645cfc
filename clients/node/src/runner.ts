import { randomBytes } from "node:crypto";
import type { Connection } from "./adapter";
import { argsFor, type Backend, type Call } from "./backend";

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
  return conn.send(argsFor(backend, call));
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
