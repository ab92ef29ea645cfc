import type { Runner } from "./runner";

export type Order = "desc" | "asc";
export type Ranking = "ordinal" | "dense" | "competition" | "modified";

export interface RankOptions {
  /** Default "desc": the highest score is rank 1. */
  order?: Order;
  /** Default "ordinal" (1234); "dense" (1223), "competition" (1224), "modified" (1334). */
  ranking?: Ranking;
}

export interface TopOptions extends RankOptions {
  /** Entries to skip first. */
  offset?: number;
}

export interface Entry {
  rank: number;
  member: string;
  score: number;
}

/** A score as the server writes it ("inf", "-inf" included) as a number. */
export function parseScore(text: unknown): number {
  if (typeof text === "number") return text;
  const s = String(text).toLowerCase();
  if (s === "inf" || s === "+inf") return Infinity;
  if (s === "-inf") return -Infinity;
  return Number(s);
}

function scoreArg(score: number): string {
  if (score === Infinity) return "+inf";
  if (score === -Infinity) return "-inf";
  return String(score);
}

function rankArgs(options: RankOptions): string[] {
  const args = [(options.order ?? "desc").toUpperCase()];
  if (options.ranking) args.push("RANKING", options.ranking.toUpperCase());
  return args;
}

function entryOf(reply: unknown): Entry {
  const [rank, member, score] = reply as unknown[];
  return { rank: Number(rank), member: String(member), score: parseScore(score) };
}

/** A leaderboard on a sorted set: among equal scores, whoever got there first ranks first. */
export class Leaderboard {
  constructor(
    private readonly runner: Runner,
    readonly key: string,
  ) {}

  private run(command: string, args: readonly string[]): Promise<unknown> {
    return this.runner.run({ command, keys: [this.key], args });
  }

  /** Sets scores, `{ member: score }` (a Map keeps its order; stamps follow it). Resolves to the members added. */
  async add(scores: Record<string, number> | Map<string, number>): Promise<number> {
    const entries = scores instanceof Map ? [...scores] : Object.entries(scores);
    return Number(await this.run("LB.ADD", entries.flatMap(([member, score]) => [scoreArg(score), member])));
  }

  /** Adds amount (default 1) to member's score. Resolves to the new score. */
  async incr(member: string, amount = 1): Promise<number> {
    return parseScore(await this.run("LB.INCR", [scoreArg(amount), member]));
  }

  /** Removes members. Resolves to the number removed. */
  async remove(...members: string[]): Promise<number> {
    return Number(await this.run("LB.REM", members));
  }

  /** Member's rank and score and the board's size; null when member is absent. */
  async rank(member: string, options: RankOptions = {}): Promise<{ rank: number; score: number; total: number } | null> {
    const reply = (await this.run("LB.RANK", [member, ...rankArgs(options)])) as unknown[] | null;
    if (reply === null) return null;
    const [rank, score, total] = reply;
    return { rank: Number(rank), score: parseScore(score), total: Number(total) };
  }

  /** The n entries around member (member as near the middle as the board's ends allow); null when absent. */
  async around(member: string, n: number, options: RankOptions = {}): Promise<Entry[] | null> {
    const reply = (await this.run("LB.AROUND", [member, String(n), ...rankArgs(options)])) as unknown[] | null;
    return reply === null ? null : reply.map(entryOf);
  }

  /** The n best entries, after skipping `offset`. */
  async top(n: number, options: TopOptions = {}): Promise<Entry[]> {
    const offset = options.offset ? ["OFFSET", String(options.offset)] : [];
    const reply = (await this.run("LB.TOP", [String(n), ...offset, ...rankArgs(options)])) as unknown[];
    return reply.map(entryOf);
  }

  /** Page `page` (1-based) of `size` entries, and the number of pages. */
  async page(page: number, size: number, options: RankOptions = {}): Promise<{ totalPages: number; entries: Entry[] }> {
    const [total, entries] = (await this.run("LB.PAGE", [String(page), String(size), ...rankArgs(options)])) as [unknown, unknown[]];
    return { totalPages: Number(total), entries: entries.map(entryOf) };
  }

  /** The share of members with a strictly worse score, in percent; null when member is absent. */
  async percentile(member: string, options: { order?: Order } = {}): Promise<number | null> {
    const reply = await this.run("LB.PERCENTILE", [member, (options.order ?? "desc").toUpperCase()]);
    return reply === null ? null : parseScore(reply);
  }
}
