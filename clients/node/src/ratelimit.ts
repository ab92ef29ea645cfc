import type { Block, Call } from "./backend";

/** What every limiter resolves to (the module's five integers, named). */
export interface RateLimitResult {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** ms until the request would fit; -1 when allowed, or when its cost can never fit. */
  retryAfterMs: number;
  /** ms until the limiter is full again. */
  resetAfterMs: number;
  /** IETF draft `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (s) and, when denied, `Retry-After` (s). */
  headers(): Record<string, string>;
}

export interface TokenBucketOptions {
  capacity: number;
  /** Tokens refilled per `periodMs`. */
  rate: number;
  /** Default 1000. */
  periodMs?: number;
  /** Default 1; 0 is a peek that writes nothing. */
  cost?: number;
}

export interface FixedWindowOptions {
  limit: number;
  windowMs: number;
  cost?: number;
}

export interface SlidingWindowOptions extends FixedWindowOptions {
  /** A log of every admission instead of the weighted two-window estimate. */
  exact?: boolean;
}

/** redis-cell's `CL.THROTTLE` parameters. */
export interface ThrottleOptions {
  maxBurst: number;
  countPerPeriod: number;
  periodS: number;
  quantity?: number;
}

/** One limit of `limitAll` and `refund`: its key and its own method's options, e.g. `{ key, tokenBucket: { capacity, rate } }`. */
export type Limit = { key: string } & (
  | { tokenBucket: TokenBucketOptions }
  | { fixedWindow: FixedWindowOptions }
  | { slidingWindow: SlidingWindowOptions }
);

/** `limitAll`'s decision over several limits, taken atomically. */
export interface AllLimitsResult {
  /** Every limit admitted and consumed its cost; else none consumed anything. */
  allowed: boolean;
  /** The index (0-based, in the array given) of the first limit that denied; null when allowed. */
  denied: number | null;
  /** Each limit's result, in order; when denied, one that would have admitted says allowed, with its remaining as it would be after its cost. */
  limits: RateLimitResult[];
}

function headersOf(result: Omit<RateLimitResult, "headers">): Record<string, string> {
  const headers: Record<string, string> = {
    "RateLimit-Limit": String(result.limit),
    "RateLimit-Remaining": String(result.remaining),
    "RateLimit-Reset": String(Math.ceil(result.resetAfterMs / 1000)),
  };
  if (!result.allowed && result.retryAfterMs >= 0) {
    headers["Retry-After"] = String(Math.ceil(result.retryAfterMs / 1000));
  }
  return headers;
}

function result(fields: Omit<RateLimitResult, "headers">): RateLimitResult {
  return { ...fields, headers: () => headersOf(fields) };
}

/**
 * A five-number reply `[flag, limit, remaining, retry_after, reset_after]`: `allowedWhen` is the
 * flag's value for an allowed request, `msPerUnit` the times' unit (a retry of -1 stays -1).
 */
function fromReply(reply: unknown, allowedWhen: number, msPerUnit: number): RateLimitResult {
  const [flag, limit, remaining, retry, reset] = (reply as unknown[]).map(Number) as number[];
  return result({
    allowed: flag === allowedWhen,
    limit: limit as number,
    remaining: remaining as number,
    retryAfterMs: retry === -1 ? -1 : (retry as number) * msPerUnit,
    resetAfterMs: (reset as number) * msPerUnit,
  });
}

/** `[allowed, limit, remaining, retry_after_ms, reset_after_ms]` from an `RL.*` command. */
export function fromRl(reply: unknown): RateLimitResult {
  return fromReply(reply, 1, 1);
}

/** `CL.THROTTLE`'s `[limited, limit, remaining, retry_after_s, reset_after_s]`, in ms. */
export function fromThrottle(reply: unknown): RateLimitResult {
  return fromReply(reply, 0, 1000);
}

function tokenBucketArgs(o: TokenBucketOptions): string[] {
  return [String(o.capacity), String(o.rate), String(o.periodMs ?? 1000), "COST", String(o.cost ?? 1)];
}

function fixedWindowArgs(o: FixedWindowOptions): string[] {
  return [String(o.limit), String(o.windowMs), "COST", String(o.cost ?? 1)];
}

function slidingWindowArgs(o: SlidingWindowOptions): string[] {
  return [...fixedWindowArgs(o), ...(o.exact ? ["EXACT"] : [])];
}

/** A limit as its command's block: the token (`TOKENBUCKET`, its command `RL.TOKENBUCKET`), key and arguments. */
export function limitBlock(limit: Limit): Block {
  const { key } = limit;
  if ("tokenBucket" in limit) return { token: "TOKENBUCKET", key, args: tokenBucketArgs(limit.tokenBucket) };
  if ("fixedWindow" in limit) return { token: "FIXEDWINDOW", key, args: fixedWindowArgs(limit.fixedWindow) };
  return { token: "SLIDINGWINDOW", key, args: slidingWindowArgs(limit.slidingWindow) };
}

/** One limit, by its own command (`RL.TOKENBUCKET key ...`). */
export function limitCall(limit: Limit): Call {
  const { token, key, args } = limitBlock(limit);
  return { command: `RL.${token}`, keys: [key], args };
}

/** `RL.ALL`'s `[allowed, denied (1-based, 0 when allowed), five per limit...]`. */
export function fromAll(reply: unknown): AllLimitsResult {
  const [allowed, denied, ...limits] = reply as unknown[];
  return { allowed: Number(allowed) === 1, denied: Number(denied) === 0 ? null : Number(denied) - 1, limits: limits.map(fromRl) };
}

export function throttleArgs(o: ThrottleOptions): string[] {
  return [String(o.maxBurst), String(o.countPerPeriod), String(o.periodS), String(o.quantity ?? 1)];
}
