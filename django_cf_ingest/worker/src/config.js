// The Worker's settings, read once per invocation from its vars and secrets.
//
// Vars come from `[vars]` in wrangler.toml (written by `cf_ingest_worker`);
// INTERNAL_API_SECRET is a secret set with `wrangler secret put` and is never
// written to a file or a log line.

/**
 * @typedef {object} Env
 * @property {string} INTERNAL_INGEST_BASE_URL  Origin of the Django site.
 * @property {string} [INTERNAL_INGEST_PATH]    Path of the internal endpoints.
 * @property {string} INTERNAL_API_SECRET       Shared secret (a secret binding).
 * @property {string} [SIGN_REQUESTS]           "true": add HMAC signatures.
 * @property {string} [USE_EDGE_INGEST]         "true": Stage 2 at the edge.
 * @property {string} [WORKERS_AI_MODEL]        Model when the server names none.
 * @property {string} [WORKERS_AI_JSON_MODE]    "false": never send response_format.
 * @property {string} [DEAD_LETTER_QUEUE]       Name of the dead-letter queue.
 * @property {string} [MAX_RETRIES]             The ingest consumer's max_retries.
 * @property {string} [RETRY_BASE_DELAY_SECONDS]
 * @property {string} [RETRY_MAX_DELAY_SECONDS]
 * @property {string} [HTTP_TIMEOUT_SECONDS]
 * @property {string} [PARALLEL_MESSAGES]       Messages of a batch run at once.
 * @property {string} [R2_KEY_PREFIX]           Stage 2: the storage's location.
 * @property {R2Bucket} [R2]                    Stage 2: the uploads bucket.
 * @property {Ai} [AI]                          Stage 2: Workers AI.
 */

/**
 * The parts of the bindings the Worker uses.
 * @typedef {{ get(key: string): Promise<R2ObjectBody | null> }} R2Bucket
 * @typedef {{ arrayBuffer(): Promise<ArrayBuffer>, size: number }} R2ObjectBody
 * @typedef {{ run(model: string, inputs: object): Promise<any> }} Ai
 */

/**
 * @typedef {object} Config
 * @property {string} baseUrl        Base URL without a trailing slash.
 * @property {string} path           Endpoint path, with both slashes.
 * @property {string} secret
 * @property {boolean} sign
 * @property {boolean} edge
 * @property {string} model
 * @property {boolean} jsonMode
 * @property {string} deadLetterQueue
 * @property {number} maxRetries
 * @property {number} baseDelay      Seconds.
 * @property {number} maxDelay       Seconds.
 * @property {number} timeoutMs
 * @property {number} parallel
 * @property {string} keyPrefix     Prepended to a storage key to get the R2 key.
 */

// Longest per-message delay that every documented limit accepts.
export const MAX_DELAY_SECONDS = 43200;

/** @param {string | undefined} value */
function flag(value, fallback = false) {
  if (value === undefined || value === "") return fallback;
  return ["1", "true", "yes", "on"].includes(String(value).trim().toLowerCase());
}

/**
 * @param {string | undefined} value
 * @param {number} fallback
 * @param {number} min
 * @param {number} max
 */
function number(value, fallback, min, max) {
  const parsed = Number(value);
  if (value === undefined || value === "" || !Number.isFinite(parsed)) return fallback;
  return Math.min(max, Math.max(min, parsed));
}

/** @param {string | undefined} value */
function endpointPath(value) {
  const raw = (value || "/internal/ingest/").trim();
  return `/${raw.replace(/^\/+|\/+$/g, "")}/`.replace(/^\/\/$/, "/");
}

/** @param {string | undefined} value */
function keyPrefix(value) {
  const trimmed = (value || "").trim().replace(/^\/+|\/+$/g, "");
  return trimmed ? `${trimmed}/` : "";
}

export class ConfigError extends Error {}

/**
 * @param {Env} env
 * @returns {Config}
 */
export function readConfig(env) {
  const baseUrl = (env.INTERNAL_INGEST_BASE_URL || "").trim().replace(/\/+$/, "");
  if (!/^https?:\/\//.test(baseUrl)) {
    throw new ConfigError("INTERNAL_INGEST_BASE_URL must be an http(s) URL");
  }
  if (!env.INTERNAL_API_SECRET) {
    throw new ConfigError("the INTERNAL_API_SECRET secret is not set");
  }
  const baseDelay = number(env.RETRY_BASE_DELAY_SECONDS, 2, 0, MAX_DELAY_SECONDS);
  return {
    baseUrl,
    path: endpointPath(env.INTERNAL_INGEST_PATH),
    secret: env.INTERNAL_API_SECRET,
    sign: flag(env.SIGN_REQUESTS),
    edge: flag(env.USE_EDGE_INGEST),
    model: (env.WORKERS_AI_MODEL || "@cf/meta/llama-3.2-11b-vision-instruct").trim(),
    jsonMode: flag(env.WORKERS_AI_JSON_MODE, true),
    deadLetterQueue: (env.DEAD_LETTER_QUEUE || "").trim(),
    maxRetries: Math.round(number(env.MAX_RETRIES, 3, 0, 100)),
    baseDelay,
    maxDelay: number(env.RETRY_MAX_DELAY_SECONDS, 3600, baseDelay, MAX_DELAY_SECONDS),
    timeoutMs: number(env.HTTP_TIMEOUT_SECONDS, 120, 1, 900) * 1000,
    parallel: Math.round(number(env.PARALLEL_MESSAGES, 6, 1, 100)),
    keyPrefix: keyPrefix(env.R2_KEY_PREFIX),
  };
}
