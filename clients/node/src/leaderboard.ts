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

/** A member's rank and score and the board's size (LB.RANK's reply). */
export interface RankResult {
  rank: number;
  score: number;
  total: number;
}

/** `withRank: true` makes a write also answer the ranks, ranked as `order` and `ranking` choose. */
export interface WithRankOptions extends RankOptions {
  withRank: true;
}

function rankResult(reply: unknown): RankResult {
  const [rank, score, total] = reply as unknown[];
  return { rank: Number(rank), score: parseScore(score), total: Number(total) };
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

  /**
   * Sets scores, `{ member: score }` (a Map keeps its order; stamps follow it). Resolves to the
   * members added; with `{ withRank: true }`, to each member's new rank, score and the board's size.
   */
  async add(scores: Record<string, number> | Map<string, number>): Promise<number>;
  async add(scores: Record<string, number> | Map<string, number>, options: WithRankOptions): Promise<RankResult[]>;
  async add(scores: Record<string, number> | Map<string, number>, options?: WithRankOptions): Promise<number | RankResult[]> {
    const entries = scores instanceof Map ? [...scores] : Object.entries(scores);
    const pairs = entries.flatMap(([member, score]) => [scoreArg(score), member]);
    if (!options?.withRank) return Number(await this.run("LB.ADD", pairs));
    const reply = (await this.run("LB.ADD", ["WITHRANK", ...rankArgs(options), ...pairs])) as unknown[];
    return reply.map(rankResult);
  }

  /** Adds amount (default 1) to member's score. Resolves to the new score; with `{ withRank: true }`, to its rank. */
  async incr(member: string, amount?: number): Promise<number>;
  async incr(member: string, amount: number, options: WithRankOptions): Promise<RankResult>;
  async incr(member: string, amount = 1, options?: WithRankOptions): Promise<number | RankResult> {
    if (!options?.withRank) return parseScore(await this.run("LB.INCR", [scoreArg(amount), member]));
    return rankResult(await this.run("LB.INCR", [scoreArg(amount), member, "WITHRANK", ...rankArgs(options)]));
  }

  /** Removes members. Resolves to the number removed. */
  async remove(...members: string[]): Promise<number> {
    return Number(await this.run("LB.REM", members));
  }

  /** Member's rank and score and the board's size; null when member is absent. */
  async rank(member: string, options: RankOptions = {}): Promise<RankResult | null> {
    const reply = await this.run("LB.RANK", [member, ...rankArgs(options)]);
    return reply === null ? null : rankResult(reply);
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
