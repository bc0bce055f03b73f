// One log line per message: `key=value` pairs with ids, counts and short
// codes only. Never a secret, a token, file bytes or model output.

/**
 * @param {Record<string, string | number | boolean | null | undefined>} fields
 */
export function format(fields) {
  const parts = ["cf-ingest"];
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined || value === null || value === "") continue;
    const text = String(value).replace(/["\\]/g, "").slice(0, 160);
    parts.push(/[\s=]/.test(text) ? `${key}="${text}"` : `${key}=${text}`);
  }
  return parts.join(" ");
}

/**
 * @param {"info" | "warn" | "error"} level
 * @param {Record<string, string | number | boolean | null | undefined>} fields
 */
export function log(level, fields) {
  const line = format(fields);
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}
