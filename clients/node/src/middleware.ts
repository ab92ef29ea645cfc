import type { RateLimitResult } from "./ratelimit";

export interface RateLimitMiddlewareOptions<Req> {
  /** The limiter's key for a request, e.g. `(req) => "api:" + req.ip`. */
  key: (req: Req) => string | Promise<string>;
  /** Runs the limiter on that key, e.g. `(key) => p.tokenBucket(key, { capacity: 10, rate: 5 })`. */
  limit: (key: string) => Promise<RateLimitResult>;
  /** The 429 body; default `{ error: "Too Many Requests", retryAfterMs }`. */
  body?: (result: RateLimitResult) => unknown;
}

function defaultBody(result: RateLimitResult): unknown {
  return { error: "Too Many Requests", retryAfterMs: result.retryAfterMs };
}

async function decide<Req>(options: RateLimitMiddlewareOptions<Req>, req: Req): Promise<RateLimitResult> {
  return options.limit(await options.key(req));
}

/** The parts of Express's request handler types the middleware uses. */
export interface ExpressResponseLike {
  setHeader(name: string, value: string): unknown;
  status(code: number): { json(body: unknown): unknown };
}

/**
 * Express middleware: sets the `RateLimit-*` headers on every response, and answers a denied
 * request with 429, `Retry-After` and a JSON body. Redis errors go to `next(err)`.
 */
export function expressRateLimit<Req = unknown>(options: RateLimitMiddlewareOptions<Req>) {
  return (req: Req, res: ExpressResponseLike, next: (err?: unknown) => void): void => {
    decide(options, req).then(
      (result) => {
        for (const [name, value] of Object.entries(result.headers())) res.setHeader(name, value);
        if (result.allowed) next();
        else res.status(429).json((options.body ?? defaultBody)(result));
      },
      (err: unknown) => next(err),
    );
  };
}

/** The parts of Fastify's reply the hook uses. */
export interface FastifyReplyLike {
  header(name: string, value: string): unknown;
  code(statusCode: number): { send(body: unknown): unknown };
}

/**
 * A Fastify `onRequest` (or `preHandler`) hook: `app.addHook("onRequest", fastifyRateLimit({...}))`.
 * Same headers and 429 as the Express middleware; Redis errors reject the hook.
 */
export function fastifyRateLimit<Req = unknown>(options: RateLimitMiddlewareOptions<Req>) {
  return async (request: Req, reply: FastifyReplyLike): Promise<unknown> => {
    const result = await decide(options, request);
    for (const [name, value] of Object.entries(result.headers())) reply.header(name, value);
    if (result.allowed) return undefined;
    reply.code(429).send((options.body ?? defaultBody)(result));
    return reply;
  };
}
