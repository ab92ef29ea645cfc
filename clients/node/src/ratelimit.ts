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

export function tokenBucketArgs(o: TokenBucketOptions): string[] {
  return [String(o.capacity), String(o.rate), String(o.periodMs ?? 1000), "COST", String(o.cost ?? 1)];
}

export function fixedWindowArgs(o: FixedWindowOptions): string[] {
  return [String(o.limit), String(o.windowMs), "COST", String(o.cost ?? 1)];
}

export function slidingWindowArgs(o: SlidingWindowOptions): string[] {
  return [...fixedWindowArgs(o), ...(o.exact ? ["EXACT"] : [])];
}

export function throttleArgs(o: ThrottleOptions): string[] {
  return [String(o.maxBurst), String(o.countPerPeriod), String(o.periodS), String(o.quantity ?? 1)];
}
