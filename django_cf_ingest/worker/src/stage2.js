// Stage 2: the extraction runs at the edge. For each upload the Worker asks
// the site for its metadata, reads the file from R2, runs the Workers AI
// model on it, and posts the answer back; the site validates and stores it.

import { call, decide } from "./internal-api.js";
import { errorName } from "./messages.js";

const ANSWER_RULES =
  "Answer with one JSON object and nothing else. Copy values as they are printed " +
  "on the document. Use null for a value that is missing or not legible; do not guess.";

// Workers AI error codes that asking again cannot fix: unknown model, bad
// base64, incomplete request, licence not agreed, invalid model id, too large.
const PERMANENT_AI_ERRORS = ["5007", "5004", "3003", "5016", "3042", "3006"];

/**
 * @typedef {object} Meta
 * @property {number} uploadId
 * @property {string} storageKey
 * @property {string} mime
 * @property {number} typeId
 * @property {string} typeSlug
 * @property {string} [instructions]
 * @property {string} [prompt]         A prompt written by the site, if it sends one.
 * @property {object} [schema]         JSON schema of the document type.
 * @property {string | number} [schemaVersion]
 * @property {string} [model]
 * @property {number} [maxTokens]
 * @property {string} deliveryToken
 * @property {boolean} [done]
 */

/**
 * Bytes as base64, the form the vision models take as a string.
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

/**
 * The system prompt: the type's instructions, its schema and the rules.
 *
 * @param {Meta} meta
 */
export function systemPrompt(meta) {
  if (meta.prompt) return meta.prompt;
  const parts = [];
  if (meta.instructions?.trim()) parts.push(meta.instructions.trim());
  if (meta.schema) {
    const schema = JSON.stringify(meta.schema);
    parts.push(`Return an object that matches this JSON schema:\n${schema}`);
  }
  parts.push(ANSWER_RULES);
  return parts.join("\n\n");
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
      { role: "system", content: systemPrompt(meta) },
      { role: "user", content: "Read the document in the image and return the fields." },
    ],
    image,
    max_tokens: meta.maxTokens || 2048,
    temperature: 0,
  };
  if (jsonMode && meta.schema) {
    inputs.response_format = { type: "json_schema", json_schema: meta.schema };
  }
  return inputs;
}

/**
 * Run the model, asking once more without JSON Mode if the model cannot
 * comply with it.
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
    if (jsonMode && /JSON Mode/i.test(String(error instanceof Error ? error.message : error))) {
      return ai.run(model, modelInputs(meta, image, false));
    }
    throw error;
  }
}

/**
 * A short code for a Workers AI error, and whether asking again may help.
 *
 * @param {unknown} error
 */
export function classifyAiError(error) {
  const text = error instanceof Error ? error.message : String(error);
  const code = PERMANENT_AI_ERRORS.find((c) => text.includes(c));
  const match = text.match(/\b(\d{4})\b/);
  return {
    code: code ? `workers_ai_${code}` : match ? `workers_ai_${match[1]}` : errorName(error),
    retryable: code === undefined,
  };
}

/**
 * The part of the completion body that carries the model's answer.
 *
 * @param {any} output  What `env.AI.run` returned.
 */
export function answerFields(output) {
  const response = output?.response;
  const usage = output?.usage ?? {};
  /** @type {Record<string, unknown>} */
  const fields = {
    usage: {
      tokensIn: Number(usage.prompt_tokens) || 0,
      tokensOut: Number(usage.completion_tokens) || 0,
    },
  };
  // With JSON Mode the response may come back already parsed.
  if (response !== null && typeof response === "object") fields.resultsJson = response;
  else fields.rawText = typeof response === "string" ? response : "";
  return fields;
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
    /** @type {Meta} */
    const meta = metaReply.body;
    if (meta?.done) return { action: "ack", outcome: "already_done", status: 200 };

    const started = Date.now();
    const model = meta.model || config.model;
    const complete = async (/** @type {Record<string, unknown>} */ fields) => {
      const reply = await call(config, "POST", "complete", {
        uploadId,
        typeId: meta.typeId,
        typeSlug: meta.typeSlug,
        schemaVersion: meta.schemaVersion,
        provider: "workers_ai",
        model,
        deliveryToken: meta.deliveryToken,
        ...fields,
      });
      return decide(reply, message.attempts, config);
    };
    const failed = (/** @type {string} */ code, /** @type {boolean} */ retryable) =>
      complete({
        status: "error",
        error: { code, retryable },
        latencyMs: Date.now() - started,
      });

    if (!env.R2 || !env.AI) return failed("bindings_missing", true);
    if (!String(meta.mime || "").startsWith("image/")) return failed("unsupported_mime", false);
    const object = await env.R2.get(meta.storageKey);
    if (object === null) return failed("object_missing", false);
    const image = toBase64(new Uint8Array(await object.arrayBuffer()));

    let output;
    try {
      output = await runModel(env.AI, model, meta, image, config.jsonMode);
    } catch (error) {
      const { code, retryable } = classifyAiError(error);
      return failed(code, retryable);
    }
    return complete({ status: "ok", latencyMs: Date.now() - started, ...answerFields(output) });
  };
}
