// Retry delays: exponential in the message's delivery count, with jitter, and
// never shorter than the server's Retry-After.

import { MAX_DELAY_SECONDS } from "./config.js";

/**
 * Seconds to wait before the next delivery of a message.
 *
 * The ceiling doubles with each delivery (`attempts` starts at 1), capped at
 * `maxDelay`; the delay is drawn from the upper half of it, so messages that
 * failed together do not all come back together.
 *
 * @param {number} attempts  `message.attempts` of the failed delivery.
 * @param {{ baseDelay: number, maxDelay: number }} config
 * @param {number | null} [hint]  The server's Retry-After, in seconds.
 * @param {() => number} [random]
 * @returns {number} Whole seconds, as `message.retry` takes them.
 */
export function retryDelay(attempts, config, hint = null, random = Math.random) {
  const exponent = Math.max(0, Math.min(30, attempts - 1));
  const ceiling = Math.min(config.maxDelay, config.baseDelay * 2 ** exponent);
  let delay = ceiling / 2 + random() * (ceiling / 2);
  if (hint !== null && Number.isFinite(hint)) delay = Math.max(delay, hint);
  return Math.min(MAX_DELAY_SECONDS, Math.max(0, Math.ceil(delay)));
}

/**
 * Retry-After as seconds, from either of its two HTTP forms.
 *
 * @param {string | null} value
 * @param {number} [now]  Milliseconds since the epoch.
 * @returns {number | null}
 */
export function parseRetryAfter(value, now = Date.now()) {
  if (!value) return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return null;
  return Math.max(0, Math.ceil((date - now) / 1000));
}
