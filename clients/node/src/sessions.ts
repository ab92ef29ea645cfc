import { asRecord } from "./backend";
import { randomId, type Runner } from "./runner";

export type SessionData = Record<string, string | number | boolean>;

export interface CreateSessionOptions {
  /** The session ends after idleMs without use... */
  idleMs: number;
  /** ...and absoluteMs after its creation at the latest. */
  absoluteMs: number;
  /** Its fields (values are stored as strings; names may not start with `__`). */
  data?: SessionData;
  /** Keeps at most this many live sessions in the index: the ones soonest to expire are destroyed. */
  maxSessions?: number;
}

function pairs(data: SessionData): string[] {
  return Object.entries(data).flatMap(([field, value]) => [field, String(value)]);
}

/**
 * Sessions with OWASP's rules: 128-bit CSPRNG ids, idle and absolute timeouts, and a per-user
 * index that lists and counts sessions exactly. A session is named by its key.
 */
export class Sessions {
  constructor(private readonly runner: Runner) {}

  /** Creates a session in index (with `maxSessions`, capping the index); resolves to its key (`<index>:<id>` or `{<index>}:<id>`). */
  async create(index: string, options: CreateSessionOptions): Promise<string> {
    const max = options.maxSessions === undefined ? [] : ["MAX", String(options.maxSessions)];
    const args = [...max, String(options.idleMs), String(options.absoluteMs), ...pairs(options.data ?? {})];
    return String(await this.runner.run({ command: "SESSION.CREATE", keys: [index], args, twinLead: [randomId()] }));
  }

  /** The session's fields (sliding its idle timeout), or null when it is gone. */
  async get(session: string): Promise<Record<string, string> | null> {
    const reply = await this.runner.run({ command: "SESSION.GET", keys: [session] });
    if (reply === null) return null;
    const record = asRecord(reply);
    return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, String(v)]));
  }

  /** Sets fields (sliding the idle timeout). Resolves to the number of new fields, or null when the session is gone. */
  async set(session: string, data: SessionData): Promise<number | null> {
    const reply = await this.runner.run({ command: "SESSION.SET", keys: [session], args: pairs(data) });
    return reply === null ? null : Number(reply);
  }

  /** Moves the session to a new id (do it at login). Resolves to the new key, or null when it is gone. */
  async rotate(session: string): Promise<string | null> {
    const reply = await this.runner.run({ command: "SESSION.ROTATE", keys: [session], twinLead: [randomId()] });
    return reply === null ? null : String(reply);
  }

  /** Deletes the session. Resolves to whether a live session was destroyed. */
  async destroy(session: string): Promise<boolean> {
    return Number(await this.runner.run({ command: "SESSION.DESTROY", keys: [session] })) === 1;
  }

  /** Deletes every session of the index. Resolves to the number destroyed. */
  async destroyAll(index: string): Promise<number> {
    return Number(await this.runner.run({ command: "SESSION.DESTROYALL", keys: [index] }));
  }

  /** The index's live session keys, soonest to expire first. */
  async list(index: string): Promise<string[]> {
    return ((await this.runner.run({ command: "SESSION.LIST", keys: [index] })) as unknown[]).map(String);
  }

  /** The number of live sessions in the index. */
  async count(index: string): Promise<number> {
    return Number(await this.runner.run({ command: "SESSION.COUNT", keys: [index] }));
  }
}
