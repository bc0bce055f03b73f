// Stage 1: the site runs the extraction. The Worker only tells it which
// upload to process, and settles the message from the answer.

import { call, decide } from "./internal-api.js";

/**
 * @param {import("./config.js").Config} config
 * @returns {import("./messages.js").Handler}
 */
export function stage1(config) {
  return async (uploadId, message) => {
    const reply = await call(config, "POST", String(uploadId), {});
    return decide(reply, message.attempts, config);
  };
}
