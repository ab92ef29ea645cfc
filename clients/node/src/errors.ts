/**
 * An error reply from the server (module or twin), with the server's message unchanged; or the
 * refusal a Cluster client makes before sending a call whose keys are in several slots
 * (`CROSSSLOT`, as the server would answer).
 */
export class PatternsError extends Error {
  /** The reply's error code: `ERR`, `WRONGTYPE`, `NOPERM`, ... */
  readonly code: string;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "PatternsError";
    this.code = message.split(" ", 1)[0] ?? "ERR";
  }
}

/** A lock or a semaphore permit that was not granted within its wait. */
export class LockNotAcquiredError extends Error {
  readonly key: string;

  constructor(key: string, waitMs: number) {
    super(`lock ${key} not acquired within ${waitMs} ms`);
    this.name = "LockNotAcquiredError";
    this.key = key;
  }
}

// ioredis throws ReplyError, node-redis ErrorReply (SimpleError, BlobError in v5+): both are
// the server's error replies. Anything else (connection loss, timeouts) is not ours to rename.
const REPLY_ERROR_CLASSES = new Set(["ReplyError", "ErrorReply", "SimpleError", "BlobError"]);

function isReplyError(err: unknown): err is Error {
  if (!(err instanceof Error)) return false;
  if (REPLY_ERROR_CLASSES.has(err.name)) return true;
  for (let proto = Object.getPrototypeOf(err); proto; proto = Object.getPrototypeOf(proto)) {
    if (REPLY_ERROR_CLASSES.has(proto.constructor?.name)) return true;
  }
  return false;
}

/** Server error replies become PatternsError; other errors pass through. */
export function translateError(err: unknown): unknown {
  return isReplyError(err) ? new PatternsError(err.message, { cause: err }) : err;
}
