import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Connection } from "./adapter";
import { PatternsError } from "./errors";

export type Backend = "module" | "twin";

/** The Functions library the package ships: a copy of the repository's dist/patterns.lua. */
export const TWIN_PATH = join(__dirname, "..", "lua", "patterns.lua");
const TWIN_LIBRARY = "patterns";
const MODULE_NAME = "patterns";

let twinCode: string | undefined;
export function bundledTwin(): string {
  twinCode ??= readFileSync(TWIN_PATH, "utf8");
  return twinCode;
}

/** One command, in the terms both backends need. */
export interface Call {
  /** The module's command name, e.g. `LB.ADD`; the twin's function is `lb_add`. */
  command: string;
  /** Declared keys, first the command's key. */
  keys: readonly string[];
  /** The arguments after the keys (the same for both backends). */
  args?: readonly string[];
  /** Arguments only the twin takes, right after the keys: ids, leases, draws. */
  twinLead?: readonly string[];
  /** Cache tags: the module takes `TAGS tag...` at the end, the twin takes them as keys. */
  tags?: readonly string[];
  /** The module's arguments, when its keys are not first (see `blocksCall`). */
  moduleLine?: readonly string[];
}

/** One block of a command of blocks: its token, its key and the arguments after the key. */
export interface Block {
  token: string;
  key: string;
  args: readonly string[];
}

/**
 * A command of blocks (`RL.ALL limit [limit ...]`): the module takes each block's token, key and
 * arguments in turn; the twin each key in KEYS, in order, and each block's token and arguments.
 */
export function blocksCall(command: string, blocks: readonly Block[]): Call {
  return {
    command,
    keys: blocks.map((b) => b.key),
    args: blocks.flatMap((b) => [b.token, ...b.args]),
    moduleLine: blocks.flatMap((b) => [b.token, b.key, ...b.args]),
  };
}

export function moduleArgs(call: Call): string[] {
  const tags = call.tags?.length ? ["TAGS", ...call.tags] : [];
  return [call.command, ...(call.moduleLine ?? [...call.keys, ...(call.args ?? []), ...tags])];
}

/** The keys the server sees, in both backends: the declared ones, then the cache's tags. */
export function callKeys(call: Call): string[] {
  return [...call.keys, ...(call.tags ?? [])];
}

export function twinArgs(call: Call): string[] {
  const keys = callKeys(call);
  const fn = call.command.toLowerCase().replace(".", "_");
  return ["FCALL", fn, String(keys.length), ...keys, ...(call.twinLead ?? []), ...(call.args ?? [])];
}

export function argsFor(backend: Backend, call: Call): string[] {
  return backend === "module" ? moduleArgs(call) : twinArgs(call);
}

/** A record reply as an object: RESP2 gives flat [k, v, ...] arrays, RESP3 maps. */
export function asRecord(reply: unknown): Record<string, unknown> {
  if (Array.isArray(reply)) {
    const out: Record<string, unknown> = {};
    for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = reply[i + 1];
    return out;
  }
  if (reply instanceof Map) return Object.fromEntries(reply);
  return (reply ?? {}) as Record<string, unknown>;
}

/** The named fields of a record, as numbers. */
export function numbers<K extends string>(record: Record<string, unknown>, names: readonly K[]): Record<K, number> {
  return Object.fromEntries(names.map((name) => [name, Number(record[name])])) as Record<K, number>;
}

async function moduleListed(conn: Connection): Promise<boolean> {
  const list = (await conn.send(["MODULE", "LIST"])) as unknown[];
  return list.some((entry) => String(asRecord(entry)["name"]) === MODULE_NAME);
}

/** Whether the server runs the module: MODULE LIST, or where that is denied, a probe. */
export async function hasModule(conn: Connection): Promise<boolean> {
  try {
    return await moduleListed(conn);
  } catch (err) {
    if (!(err instanceof PatternsError)) throw err;
  }
  // A peek (COST 0) writes nothing. Any reply but "unknown command" means the command exists
  // (a Cluster node answers MOVED for a slot it does not serve, after finding the command).
  try {
    await conn.send(["RL.TOKENBUCKET", "patterns:probe", "1", "1", "1", "COST", "0"]);
    return true;
  } catch (err) {
    if (err instanceof PatternsError) return !/unknown command/i.test(err.message);
    throw err;
  }
}

/** Loads the bundled twin unless the server already has this very code. */
export async function ensureTwin(conn: Connection): Promise<void> {
  const code = bundledTwin();
  const libraries = (await conn.send(["FUNCTION", "LIST", "LIBRARYNAME", TWIN_LIBRARY, "WITHCODE"])) as unknown[];
  const current = libraries.map(asRecord).find((lib) => String(lib["library_name"]) === TWIN_LIBRARY);
  if (current && String(current["library_code"]) === code) return;
  await conn.send(["FUNCTION", "LOAD", "REPLACE", code]);
}
