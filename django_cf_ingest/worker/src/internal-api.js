// Calls to the site's internal endpoints, and what their answers mean for the
// queue message.
//
// Every call carries the shared secret in X-Internal-Secret. With
// SIGN_REQUESTS on, it is also signed: X-Signature is the hex HMAC-SHA256,
// keyed with the secret, of "<timestamp>.<METHOD>.<path>.<body>", and
// X-Timestamp is the Unix time in seconds.

import { parseRetryAfter, retryDelay } from "./backoff.js";

/**
 * What to do with a message.
 * @typedef {object} Decision
 * @property {"ack" | "retry"} action
 * @property {string} outcome        Short word for the log line.
 * @property {number} [status]       HTTP status of the deciding call.
 * @property {number} [delaySeconds] For a retry.
 * @property {string} [reason]       Error class or code, never a secret or data.
 */

/**
 * @typedef {object} Reply
 * @property {number} status
 * @property {number | null} retryAfter  Seconds.
 * @property {any} body                  Parsed JSON, or null.
 */

const encoder = new TextEncoder();

/** @type {Map<string, Promise<CryptoKey>>} */
const keys = new Map();

/** @param {string} secret */
function signingKey(secret) {
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey(
      "raw",
      encoder.encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    keys.set(secret, key);
  }
  return key;
}

/** @param {ArrayBuffer} buffer */
function hex(buffer) {
  return [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The signature the server expects.
 *
 * @param {string} secret
 * @param {string} timestamp
 * @param {string} method
 * @param {string} path
 * @param {Uint8Array} body
 */
export async function sign(secret, timestamp, method, path, body) {
  const head = encoder.encode(`${timestamp}.${method.toUpperCase()}.${path}.`);
  const message = new Uint8Array(head.length + body.length);
  message.set(head, 0);
  message.set(body, head.length);
  return hex(await crypto.subtle.sign("HMAC", await signingKey(secret), message));
}

/**
 * Call one internal endpoint.
 *
 * @param {import("./config.js").Config} config
 * @param {"GET" | "POST"} method
 * @param {string} endpoint  Relative to the endpoint path, e.g. "42" or "dead".
 * @param {object} [payload] JSON body, for POST.
 * @returns {Promise<Reply>}
 */
export async function call(config, method, endpoint, payload) {
  // The base URL may carry a path of its own (a site mounted under a prefix).
  const base = new URL(`${config.baseUrl}/`);
  const url = new URL(`${base.pathname.replace(/\/$/, "")}${config.path}${endpoint}`, base);
  // The site accepts a signature once: a unique nonce (in the body of a POST,
  // in the query string of a GET) keeps two identical calls apart.
  const nonce = crypto.randomUUID();
  if (config.sign && payload === undefined) url.searchParams.set("nonce", nonce);
  const data = config.sign && payload !== undefined ? { ...payload, nonce } : payload;
  const body = data === undefined ? new Uint8Array() : encoder.encode(JSON.stringify(data));

  /** @type {Record<string, string>} */
  const headers = { "X-Internal-Secret": config.secret, Accept: "application/json" };
  if (payload !== undefined) headers["Content-Type"] = "application/json";
  if (config.sign) {
    const timestamp = String(Math.floor(Date.now() / 1000));
    headers["X-Timestamp"] = timestamp;
    headers["X-Signature"] = await sign(
      config.secret,
      timestamp,
      method,
      `${url.pathname}${url.search}`,
      body,
    );
  }

  const response = await fetch(url.toString(), {
    method,
    headers,
    body: method === "GET" ? undefined : body,
    signal: AbortSignal.timeout(config.timeoutMs),
  });
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  return {
    status: response.status,
    retryAfter: parseRetryAfter(response.headers.get("Retry-After")),
    body: parsed,
  };
}

// How long to wait when the answer points at a configuration error (a wrong
// secret or URL): long enough not to hammer the site, short enough to recover
// soon after the fix.
export const CONFIGURATION_RETRY_SECONDS = 60;

/**
 * Turn the site's answer into an ack or a retry.
 *
 * - 2xx: ack.
 * - 404 with the code `unknown_upload`: ack and drop.
 * - 404 without it: retry; the URL reaches something that is not the
 *   endpoint, and dropping every message would lose them all.
 * - 409: retry (another delivery holds the upload).
 * - 422: ack; the site recorded the failure.
 * - 429, 503: retry, not before Retry-After.
 * - 401, 403: retry; a wrong or rotated secret is fixed by configuration,
 *   not by dropping work.
 * - anything else: retry. What still fails after `max_retries` reaches the
 *   dead-letter queue, and the upload shows as dead to the editors.
 *
 * @param {Reply} reply
 * @param {number} attempts
 * @param {import("./config.js").Config} config
 * @returns {Decision}
 */
export function decide(reply, attempts, config) {
  const { status } = reply;
  const raw = reply.body?.error?.code ?? reply.body?.code;
  const code = typeof raw === "string" ? raw.slice(0, 64) : undefined;
  /** @returns {Decision} */
  const ack = (/** @type {string} */ outcome) => ({
    action: "ack",
    outcome,
    status,
    reason: code,
  });
  /** @returns {Decision} */
  const retry = (/** @type {string} */ outcome, floor = 0) => ({
    action: "retry",
    outcome,
    status,
    delaySeconds: retryDelay(attempts, config, Math.max(floor, reply.retryAfter ?? 0)),
    reason: code,
  });

  if (status >= 200 && status < 300) {
    const word = reply.body?.status;
    return ack(typeof word === "string" && /^[a-z_]{1,32}$/.test(word) ? word : "done");
  }
  if (status === 404 && code === "unknown_upload") return ack("dropped");
  if (status === 404) return retry("misrouted", CONFIGURATION_RETRY_SECONDS);
  if (status === 409) return retry("busy");
  if (status === 422) return ack("failed");
  if (status === 429) return retry("throttled");
  if (status === 503 && code === "not_configured") {
    return retry("misconfigured", CONFIGURATION_RETRY_SECONDS);
  }
  if (status === 503) return retry("unavailable");
  if (status === 401 || status === 403) {
    return retry("unauthorized", CONFIGURATION_RETRY_SECONDS);
  }
  if (status >= 500) return retry("server_error");
  return retry("unexpected_status");
}

/**
 * A retry after a call that got no answer (network error, timeout).
 *
 * @param {unknown} error
 * @param {number} attempts
 * @param {import("./config.js").Config} config
 * @returns {Decision}
 */
export function unreachable(error, attempts, config) {
  const name = error instanceof Error ? error.name : "Error";
  return {
    action: "retry",
    outcome: name === "TimeoutError" ? "timeout" : "unreachable",
    delaySeconds: retryDelay(attempts, config),
    reason: name,
  };
}
