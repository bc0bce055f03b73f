// django-cf-ingest queue consumer for Cloudflare Workers.
//
// Written as plain JavaScript ES modules with JSDoc types: wrangler deploys
// the files as they are, so the Python package ships them without a build
// step, and the same files run in the tests and in production.
//
// One Worker consumes two queues:
// - the ingest queue: Stage 1 asks the site to process each upload; Stage 2
//   (USE_EDGE_INGEST=true) runs Workers AI on the file in R2 and posts the
//   answer back;
// - the dead-letter queue: each message there is reported to the site, which
//   marks the upload dead.
// Every message is acked or retried on its own, with an exponential backoff
// from its delivery count; the handler never fails the whole batch.

import { ConfigError, readConfig } from "./config.js";
import { reportDead } from "./dead-letter.js";
import { errorName, forEachLimited, settle } from "./messages.js";
import { log } from "./log.js";
import { stage1 } from "./stage1.js";
import { stage2 } from "./stage2.js";

// How long messages wait when the Worker itself is misconfigured.
const MISCONFIGURED_DELAY_SECONDS = 300;

export default {
  /**
   * @param {{ queue: string, messages: import("./messages.js").QueueMessage[],
   *   retryAll(options?: { delaySeconds?: number }): void }} batch
   * @param {import("./config.js").Env} env
   */
  async queue(batch, env) {
    let config;
    try {
      config = readConfig(env);
    } catch (error) {
      // Nothing can succeed until the operator fixes the settings; keep the
      // messages rather than spend their retries quickly.
      const reason = error instanceof ConfigError ? error.message : errorName(error);
      log("error", {
        queue: batch.queue,
        outcome: "misconfigured",
        reason,
        count: batch.messages.length,
      });
      batch.retryAll({ delaySeconds: MISCONFIGURED_DELAY_SECONDS });
      return;
    }

    let handler;
    if (config.deadLetterQueue && batch.queue === config.deadLetterQueue) {
      handler = reportDead(config);
    } else if (config.edge) {
      handler = stage2(config, env);
    } else {
      handler = stage1(config);
    }
    await forEachLimited(batch.messages, config.parallel, (message) =>
      settle(message, handler, config, batch.queue),
    );
  },
};
