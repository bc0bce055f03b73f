// The words and the schema sent to the model, built from the upload's
// metadata exactly as the site's own Workers AI provider builds them: the
// document type's instructions, one line per field of its JSON schema, and the
// rules of the answer; JSON Mode gets the schema with its references resolved.

export const ANSWER_RULES =
  "Answer with one JSON object and nothing else. Copy values as they are " +
  "printed on the document. Use null for a value that is missing or not " +
  "legible; do not guess.";

export const USER_MESSAGE = "Read the document in the attached image.";

// Keywords whose values are data, not schemas: never walked for "$ref".
const DATA_KEYWORDS = new Set(["default", "examples", "example", "const", "enum"]);

export class UnsupportedSchema extends Error {}

/**
 * The schema with every local "$ref" replaced by its definition.
 *
 * @param {Record<string, any>} schema
 * @returns {Record<string, any>}
 */
export function inlineRefs(schema) {
  const defs = { ...(schema.definitions ?? {}), ...(schema.$defs ?? {}) };

  /**
   * @param {any} node
   * @param {string[]} seen
   * @returns {any}
   */
  const walk = (node, seen) => {
    if (Array.isArray(node)) return node.map((item) => walk(item, seen));
    if (node === null || typeof node !== "object") return node;
    if ("$ref" in node) {
      const ref = String(node.$ref);
      const name = ref.split("/").pop() ?? "";
      if (!ref.startsWith("#/") || !(name in defs)) {
        throw new UnsupportedSchema(`cannot resolve $ref ${ref}`);
      }
      if (seen.includes(name)) throw new UnsupportedSchema(`${name} refers to itself`);
      const { $ref, ...siblings } = node;
      return walk({ ...defs[name], ...siblings }, [...seen, name]);
    }
    /** @type {Record<string, any>} */
    const result = {};
    for (const [key, value] of Object.entries(node)) {
      if (key === "$defs" || key === "definitions") continue;
      result[key] = DATA_KEYWORDS.has(key) ? value : walk(value, seen);
    }
    return result;
  };
  return walk(schema, []);
}

/**
 * A number the way Python's "{:g}" writes it, for the common cases.
 *
 * @param {number} value
 */
function shortNumber(value) {
  if (Number.isInteger(value) && Math.abs(value) < 1e6) return String(value);
  return String(Number(value.toPrecision(6)));
}

/**
 * @param {Record<string, any>} node
 * @returns {string}
 */
function kind(node) {
  const variants = node.anyOf ?? node.oneOf;
  if (Array.isArray(variants) && variants.length) {
    const kinds = variants.filter((v) => v?.type !== "null").map(kind);
    const optional = kinds.length < variants.length;
    return kinds.join(" or ") + (optional ? " or null" : "");
  }
  if (Array.isArray(node.enum)) return `one of ${node.enum.map(String).join(", ")}`;
  const type = String(node.type || "value");
  if (type === "array" && node.items && typeof node.items === "object") {
    return `list of ${kind(node.items)}`;
  }
  if (typeof node.minimum === "number" && typeof node.maximum === "number") {
    return `${type} from ${shortNumber(node.minimum)} to ${shortNumber(node.maximum)}`;
  }
  return type;
}

/**
 * One line per top-level field: name, kind, whether required, meaning.
 *
 * @param {Record<string, any>} schema
 * @returns {string[]}
 */
export function fieldLines(schema) {
  let resolved = schema;
  try {
    resolved = inlineRefs(schema);
  } catch (error) {
    if (!(error instanceof UnsupportedSchema)) throw error;
  }
  const required = new Set(resolved.required ?? []);
  return Object.entries(resolved.properties ?? {}).map(([name, node]) => {
    const need = required.has(name) ? "required" : "optional";
    const meaning = [node.title, node.description]
      .filter(Boolean)
      .map((part) => String(part).replace(/\.+$/, ""))
      .join(". ");
    const line = `- ${name} (${kind(node)}, ${need})`;
    return meaning ? `${line}: ${meaning}.` : line;
  });
}

/**
 * @param {string} instructions
 * @param {Record<string, any>} schema
 */
export function systemPrompt(instructions, schema) {
  const parts = [];
  if (instructions.trim()) parts.push(instructions.trim());
  const lines = fieldLines(schema);
  if (lines.length) parts.push(`Return these fields:\n${lines.join("\n")}`);
  parts.push(ANSWER_RULES);
  return parts.join("\n\n");
}

/**
 * JSON Mode's response_format: the schema, references resolved where they can be.
 *
 * @param {Record<string, any>} schema
 */
export function responseFormat(schema) {
  let resolved = schema;
  try {
    resolved = inlineRefs(schema);
  } catch (error) {
    if (!(error instanceof UnsupportedSchema)) throw error;
  }
  return { type: "json_schema", json_schema: resolved };
}
