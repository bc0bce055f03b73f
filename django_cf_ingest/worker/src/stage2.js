// Stage 2: the extraction runs at the edge. For each upload the Worker
// 1. asks the site for the upload's metadata (GET meta/<id>), which also
//    claims the upload for this delivery;
// 2. reads the file from R2 and checks it against the size and hash the site
//    recorded;
// 3. runs the Workers AI model on it: the image as a base64 string, JSON Mode
//    when the site says the model takes it;
// 4. reports the answer or the failure (POST complete), echoing the delivery
//    token. The site validates and stores it, and its answer settles the
//    message as in Stage 1.

import { retryDelay } from "./backoff.js";
import { CONFIGURATION_RETRY_SECONDS, call, decide, unreachable } from "./internal-api.js";
import { USER_MESSAGE, responseFormat, systemPrompt } from "./prompt.js";

// Image types the vision model reads as they are. The site's own consumers
// convert other types (PDF pages, WebP, TIFF) first; the Worker cannot.
export const MODEL_IMAGE_TYPES = new Set(["image/png", "image/jpeg"]);

// Workers AI error codes, from its error table.
const LICENCE_NOT_AGREED = "5016";
const RATE_LIMITED = ["3036", "3040"];
const PERMANENT = ["5007", "3042", "5004", "3003", "3006"];
const JSON_MODE_FAILED = /JSON Mode couldn't be met/i;

// Tries of the final report when the site cannot be reached: the model call
// it carries has been paid for.
const REPORT_ATTEMPTS = 3;

/**
 * The metadata fields the Worker cannot work without, and their types.
 * @type {Record<string, string>}
 */
const META_FIELDS = {
  storageKey: "string",
  mime: "string",
  typeSlug: "string",
  deliveryToken: "string",
  schema: "object",
};

/**
 * @typedef {object} Meta
 * @property {number} uploadId
 * @property {boolean} [done]
 * @property {string} storageKey
 * @property {string} mime
 * @property {number} [size]
 * @property {string} [sha256]
 * @property {number} [typeId]
 * @property {string} typeSlug
 * @property {string} [instructions]
 * @property {Record<string, any>} schema
 * @property {string} [model]
 * @property {number} [maxTokens]
 * @property {boolean} [jsonMode]
 * @property {string} deliveryToken
 */

/**
 * @typedef {object} ReportedError
 * @property {string} code     One of the site's error codes.
 * @property {string} message
 * @property {boolean} transient
 * @property {"model" | "file"} source
 * @property {number} [retryAfter]
 */

class FileProblem extends Error {
  /**
   * @param {string} message
   * @param {boolean} transient
   */
  constructor(message, transient) {
    super(message);
    this.transient = transient;
  }
}

/**
 * Bytes as base64, the form the vision model takes as a string.
 *
 * @param {Uint8Array} bytes
 */
export function toBase64(bytes) {
  const native = /** @type {any} */ (bytes).toBase64;
  if (typeof native === "function") return native.call(bytes);
  let binary = "";
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) {
    binary += String.fromCharCode(...bytes.subarray(i, i + chunk));
  }
  return btoa(binary);
}

/** @param {ArrayBuffer} buffer */
async function sha256Hex(buffer) {
  const digest = await crypto.subtle.digest("SHA-256", buffer);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The model's input for one image.
 *
 * @param {Meta} meta
 * @param {string} image  Base64.
 * @param {boolean} jsonMode
 */
export function modelInputs(meta, image, jsonMode) {
  /** @type {Record<string, unknown>} */
  const inputs = {
    messages: [
      { role: "system", content: systemPrompt(meta.instructions ?? "", meta.schema) },
      { role: "user", content: USER_MESSAGE },
    ],
    max_tokens: meta.maxTokens || 2048,
    temperature: 0,
    image,
  };
  if (jsonMode) inputs.response_format = responseFormat(meta.schema);
  return inputs;
}

/**
 * The site's error code for a Workers AI failure, and whether it may pass.
 *
 * @param {unknown} error
 * @returns {ReportedError}
 */
export function modelError(error) {
  const text = (error instanceof Error ? error.message : String(error)).slice(0, 500);
  const codes = text.match(/\b\d{4}\b/g) ?? [];
  /** @param {string[]} list */
  const has = (list) => codes.some((code) => list.includes(code));
  if (has([LICENCE_NOT_AGREED])) {
    const message =
      `${text} (Workers AI error 5016: the account has not yet agreed to Meta's ` +
      'licence for this model. Agree once by sending {"prompt": "agree"} to the ' +
      "model, then run the upload again.)";
    return { code: "licence_not_accepted", message, transient: false, source: "model" };
  }
  if (has(RATE_LIMITED) || /\b429\b|rate limit/i.test(text)) {
    return { code: "rate_limited", message: text, transient: true, source: "model" };
  }
  if (has(PERMANENT)) {
    return { code: "permanent", message: text, transient: false, source: "model" };
  }
  return { code: "transient", message: text, transient: true, source: "model" };
}

/**
 * The fields of the report that carry the model's answer.
 *
 * @param {any} output  What `env.AI.run` returned.
 */
export function answerFields(output) {
  const response = output?.response;
  const usage = output?.usage ?? {};
  /** @type {Record<string, unknown>} */
  const fields = {
    usage: {
      tokensIn: Math.max(0, Math.round(Number(usage.prompt_tokens) || 0)),
      tokensOut: Math.max(0, Math.round(Number(usage.completion_tokens) || 0)),
    },
  };
  // With JSON Mode the response may come back already parsed.
  if (response !== null && typeof response === "object" && !Array.isArray(response)) {
    fields.resultsJson = response;
  } else {
    fields.rawText =
      typeof response === "string" ? response : JSON.stringify(response ?? "");
  }
  return fields;
}

/**
 * Read the upload's file from R2 and check it is the one the site recorded.
 *
 * @param {import("./config.js").R2Bucket} bucket
 * @param {string} key
 * @param {Meta} meta
 */
async function readFile(bucket, key, meta) {
  let object;
  try {
    object = await bucket.get(key);
  } catch {
    throw new FileProblem("R2 could not be read.", true);
  }
  if (object === null) throw new FileProblem("The upload's file is not in R2.", false);
  const buffer = await object.arrayBuffer();
  const sizeDiffers =
    typeof meta.size === "number" && meta.size > 0 && buffer.byteLength !== meta.size;
  const expected = typeof meta.sha256 === "string" ? meta.sha256 : "";
  const hashDiffers = expected !== "" && (await sha256Hex(buffer)) !== expected;
  if (sizeDiffers || hashDiffers) {
    throw new FileProblem("The stored file is not the one that was uploaded.", false);
  }
  return new Uint8Array(buffer);
}

/**
 * Run the model, once more without JSON Mode if the model cannot meet it.
 *
 * @param {import("./config.js").Ai} ai
 * @param {string} model
 * @param {Meta} meta
 * @param {string} image
 * @param {boolean} jsonMode
 */
async function runModel(ai, model, meta, image, jsonMode) {
  try {
    return await ai.run(model, modelInputs(meta, image, jsonMode));
  } catch (error) {
    const text = error instanceof Error ? error.message : String(error);
    if (jsonMode && JSON_MODE_FAILED.test(text)) {
      return ai.run(model, modelInputs(meta, image, false));
    }
    throw error;
  }
}

/**
 * @param {any} meta
 * @returns {string[]}
 */
function missingFields(meta) {
  if (meta === null || typeof meta !== "object") return Object.keys(META_FIELDS);
  return Object.entries(META_FIELDS)
    .filter(([key, type]) => typeof meta[key] !== type || meta[key] === null)
    .map(([key]) => key);
}

/**
 * @param {import("./config.js").Config} config
 * @param {import("./config.js").Env} env
 * @returns {import("./messages.js").Handler}
 */
export function stage2(config, env) {
  return async (uploadId, message) => {
    const metaReply = await call(config, "GET", `meta/${uploadId}`);
    if (metaReply.status !== 200) return decide(metaReply, message.attempts, config);
    if (metaReply.body?.done === true) {
      return { action: "ack", outcome: "already_done", status: 200 };
    }
    const missing = missingFields(metaReply.body);
    if (missing.length) {
      return {
        action: "retry",
        outcome: "bad_meta",
        status: 200,
        delaySeconds: retryDelay(message.attempts, config, CONFIGURATION_RETRY_SECONDS),
        reason: `missing_${missing.join("_")}`,
      };
    }
    /** @type {Meta} */
    const meta = metaReply.body;
    const model = meta.model || config.model;
    const jsonMode = config.jsonMode && meta.jsonMode !== false;

    /** @type {Record<string, unknown>} */
    const report = {
      uploadId,
      typeId: meta.typeId,
      typeSlug: meta.typeSlug,
      deliveryToken: meta.deliveryToken,
      provider: "workers_ai",
      model,
    };
    let started = Date.now();
    try {
      if (!env.R2 || !env.AI) {
        throw new FileProblem("The Worker has no R2 or AI binding.", true);
      }
      if (!MODEL_IMAGE_TYPES.has(meta.mime)) {
        throw new FileProblem(
          `The Worker sends only PNG and JPEG to the model, not ${meta.mime}; ` +
            "run Stage 1 or the cf_ingest_consume Stage 2 consumer for other types.",
          false,
        );
      }
      const bytes = await readFile(env.R2, `${config.keyPrefix}${meta.storageKey}`, meta);
      started = Date.now();
      const output = await runModel(env.AI, model, meta, toBase64(bytes), jsonMode);
      Object.assign(report, { status: "ok", latencyMs: Date.now() - started });
      Object.assign(report, answerFields(output));
    } catch (error) {
      /** @type {ReportedError} */
      const failure =
        error instanceof FileProblem
          ? {
              code: error.transient ? "transient" : "permanent",
              message: error.message,
              transient: error.transient,
              source: "file",
            }
          : modelError(error);
      // The binding gives no Retry-After: ask the site to wait our backoff.
      if (failure.transient) failure.retryAfter = retryDelay(message.attempts, config);
      Object.assign(report, { status: "error", error: failure });
      if (failure.source === "model") report.latencyMs = Date.now() - started;
    }
    return sendReport(config, report, message.attempts);
  };
}

/**
 * POST the report; its answer settles the message.
 *
 * @param {import("./config.js").Config} config
 * @param {Record<string, unknown>} report
 * @param {number} attempts
 */
async function sendReport(config, report, attempts) {
  let lastError;
  for (let attempt = 1; attempt <= REPORT_ATTEMPTS; attempt++) {
    try {
      const reply = await call(config, "POST", "complete", report);
      return decide(reply, attempts, config);
    } catch (error) {
      lastError = error;
      if (attempt < REPORT_ATTEMPTS) {
        await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
      }
    }
  }
  return unreachable(lastError, attempts, config);
}
