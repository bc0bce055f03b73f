// A local stand-in for the Workers AI binding, wrapped around a recorder in
// the test harness. It checks what a vision model needs, an image given as a
// base64 string, and answers the way `env.AI.run` does: the model's output
// object, `{ response, usage }`, with no REST envelope.

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** @param {ArrayBuffer} buffer */
function hex(buffer) {
  return [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** @param {unknown} image */
function describe(image) {
  if (Array.isArray(image)) return "array";
  if (typeof image === "string" && image.startsWith("data:")) return "data-uri";
  return typeof image;
}

/** @param {{ RECORDER: { fetch(url: string, init: object): Promise<Response> } }} env */
export default function (env) {
  const record = (/** @type {object} */ entry) =>
    env.RECORDER.fetch("http://recorder/run", { method: "POST", body: JSON.stringify(entry) });

  return {
    /**
     * @param {string} model
     * @param {any} inputs
     */
    async run(model, inputs) {
      const image = inputs?.image;
      if (typeof image !== "string" || image.length % 4 !== 0 || !BASE64.test(image)) {
        await record({ model, error: "5004", imageType: describe(image) });
        // The error Workers AI gives for an image it cannot decode.
        throw new Error("5004: Invalid base64 data");
      }
      const bytes = Uint8Array.from(atob(image), (c) => c.charCodeAt(0));
      const reply = await record({
        model,
        imageType: "base64",
        imageBytes: bytes.length,
        imageSha256: hex(await crypto.subtle.digest("SHA-256", bytes)),
        maxTokens: inputs.max_tokens ?? null,
        responseFormat: inputs.response_format?.type ?? null,
        responseFormatSchema: inputs.response_format?.json_schema ?? null,
        roles: (inputs.messages ?? []).map((/** @type {any} */ m) => m.role),
        systemPrompt: inputs.messages?.[0]?.content ?? "",
      });
      const scripted = await reply.json();
      if (scripted.error) throw new Error(scripted.error);
      return scripted.output;
    },
  };
}
