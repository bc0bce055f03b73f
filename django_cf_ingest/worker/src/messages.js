// Running a batch: each message is settled on its own, and nothing a message
// does can fail the batch.

import { unreachable } from "./internal-api.js";
import { log } from "./log.js";

/**
 * @typedef {object} QueueMessage
 * @property {string} id
 * @property {unknown} body
 * @property {number} attempts
 * @property {() => void} ack
 * @property {(options?: { delaySeconds?: number }) => void} retry
 */

/**
 * @callback Handler
 * @param {number} uploadId
 * @param {QueueMessage} message
 * @returns {Promise<import("./internal-api.js").Decision>}
 */

/**
 * The upload id of a message body `{"uploadId": 42}` (or a bare id), or null.
 *
 * @param {unknown} body
 * @returns {number | null}
 */
export function parseUploadId(body) {
  let value = body;
  if (typeof value === "string") {
    try {
      value = JSON.parse(value);
    } catch {
      return null;
    }
  }
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return null;
  if (value !== null && typeof value === "object" && "uploadId" in value) {
    value = /** @type {{ uploadId: unknown }} */ (value).uploadId;
  }
  if (typeof value === "string" && /^\d{1,15}$/.test(value)) value = Number(value);
  if (typeof value === "number" && Number.isSafeInteger(value) && value > 0) return value;
  return null;
}

/**
 * Decide, settle and log one message.
 *
 * @param {QueueMessage} message
 * @param {Handler} handler
 * @param {import("./config.js").Config} config
 * @param {string} queue
 */
export async function settle(message, handler, config, queue) {
  const started = Date.now();
  const uploadId = parseUploadId(message.body);
  /** @type {import("./internal-api.js").Decision} */
  let decision;
  try {
    decision =
      uploadId === null
        ? { action: "ack", outcome: "malformed" }
        : await handler(uploadId, message);
  } catch (error) {
    decision = unreachable(error, message.attempts, config);
  }

  if (decision.action === "ack") message.ack();
  else message.retry({ delaySeconds: decision.delaySeconds });

  log(levelOf(decision), {
    queue,
    upload: uploadId ?? undefined,
    message: message.id,
    attempt: message.attempts,
    outcome: decision.outcome,
    action: decision.action,
    status: decision.status,
    delay: decision.action === "retry" ? decision.delaySeconds : undefined,
    reason: decision.reason,
    hint: HINTS[decision.outcome],
    ms: Date.now() - started,
  });
}

// Outcomes that need the operator: the message cannot succeed until the
// settings are fixed.
const LOUD = new Set([
  "unauthorized",
  "misrouted",
  "misconfigured",
  "unexpected_status",
  "malformed",
]);
const NOTABLE = new Set(["dropped", "failed", "error"]);

/** @type {Record<string, string>} */
const HINTS = {
  unauthorized: "check that INTERNAL_API_SECRET is one of the site's INTERNAL_SECRETS",
  misrouted: "check INTERNAL_INGEST_BASE_URL and INTERNAL_INGEST_PATH",
  misconfigured: "the site has no INTERNAL_SECRETS configured",
  malformed: "message bodies must be {\"uploadId\": <positive integer>}",
};

/**
 * @param {import("./internal-api.js").Decision} decision
 * @returns {"info" | "warn" | "error"}
 */
function levelOf(decision) {
  if (LOUD.has(decision.outcome)) return "error";
  if (decision.action === "retry" || NOTABLE.has(decision.outcome)) return "warn";
  return "info";
}

/**
 * Run `work` over `items`, at most `limit` at a time.
 *
 * @template T
 * @param {readonly T[]} items
 * @param {number} limit
 * @param {(item: T) => Promise<void>} work
 */
export async function forEachLimited(items, limit, work) {
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const item = items[next++];
      try {
        await work(item);
      } catch (error) {
        // `settle` handles its own errors; this only keeps a lane alive.
        log("error", { outcome: "worker_error", reason: errorName(error) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

/** @param {unknown} error */
export function errorName(error) {
  return error instanceof Error ? error.name : typeof error;
}
