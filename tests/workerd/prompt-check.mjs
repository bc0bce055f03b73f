// Prints the Worker's system prompt and JSON Mode schema for each document
// type read from standard input ([{instructions, schema}, ...]), so the tests
// can compare them with what the site's own Workers AI provider sends.
//
//   node prompt-check.mjs <path to prompt.js> < types.json

import { readFileSync } from "node:fs";

const source = readFileSync(process.argv[2], "utf8");
// prompt.js imports nothing, so it loads as a module from its text.
const prompt = await import(`data:text/javascript,${encodeURIComponent(source)}`);

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const types = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const results = types.map(({ instructions, schema }) => ({
  systemPrompt: prompt.systemPrompt(instructions, schema),
  responseFormat: prompt.responseFormat(schema),
}));
process.stdout.write(JSON.stringify(results));
