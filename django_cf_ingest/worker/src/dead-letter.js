// The dead-letter queue's consumer: it tells the site about each message the
// ingest queue gave up on, so the upload shows as dead in the admin (with the
// number of deliveries) and an editor can replay it.

import { call, decide } from "./internal-api.js";

/**
 * @param {import("./config.js").Config} config
 * @returns {import("./messages.js").Handler}
 */
export function reportDead(config) {
  // A message reaches the dead-letter queue after max_retries retries, that
  // is after max_retries + 1 deliveries; the queue does not pass the count on.
  const attempts = config.maxRetries + 1;
  return async (uploadId, message) => {
    const reply = await call(config, "POST", "dead", {
      uploadId,
      attempts,
      reason: `The queue gave up on the message after ${attempts} deliveries.`,
    });
    const decision = decide(reply, message.attempts, config);
    if (decision.action === "ack" && reply.status >= 200 && reply.status < 300) {
      const outcome = reply.body?.marked === false ? "dead_ignored" : "dead_reported";
      return { ...decision, outcome };
    }
    return decision;
  };
}
