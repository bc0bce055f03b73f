// Runs a Worker written by `cf_ingest_worker` in workerd, through Miniflare,
// for the tests and the benchmark.
//
//   node harness.mjs <folder with wrangler.toml> [port]
//
// The Worker's bindings come from its own wrangler.toml, read by wrangler.
// The harness adds what only a test needs: the secret (from the environment
// variable CF_INGEST_WORKER_SECRET, never a file), a stand-in for the Workers
// AI binding, and a small HTTP API on 127.0.0.1:
//
//   GET  /ready              200 once the runtime is up
//   POST /enqueue            {"queue": "ingest"|"dead", "bodies": [...]} -> sendBatch
//   PUT  /r2/<key>           store the request body in the Worker's R2 bucket
//   POST /ai/reply           {"output": {...}} or {"error": "..."}: the AI answer,
//                            or a list of them, used in order (the last repeats)
//   GET  /ai/calls           what the AI stand-in received
//   GET  /events             the Worker's log lines, parsed
//
// It prints one line {"ready": "<url>"} when it serves, and stops on SIGTERM.

import { createServer } from "node:http";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";

const here = dirname(fileURLToPath(import.meta.url));
const [folder, portArg = "0"] = process.argv.slice(2);
if (!folder) {
  console.error("usage: node harness.mjs <worker folder> [port]");
  process.exit(2);
}
const secret = process.env.CF_INGEST_WORKER_SECRET;
if (!secret) {
  console.error("CF_INGEST_WORKER_SECRET is not set");
  process.exit(2);
}

const configPath = join(folder, "wrangler.toml");
const { workerOptions, main } = unstable_getMiniflareWorkerOptions(configPath);
const consumers = Object.entries(workerOptions.queueConsumers ?? {});
const ingest = consumers.find(([, options]) => options.deadLetterQueue);
if (!ingest) throw new Error("wrangler.toml has no consumer with a dead-letter queue");
const [ingestQueue, { deadLetterQueue }] = ingest;
const bucket = workerOptions.r2Buckets?.R2?.id ?? "uploads";
const withAi = Boolean(workerOptions.ai);

/** @type {object[]} */
const aiCalls = [];
// The AI stand-in's answers, used in order; the last one repeats.
/** @type {{ output?: object, error?: string }[]} */
let aiReplies = [{ output: { response: "{}" } }];
/** @type {Record<string, string>[]} */
const events = [];

// Wrangler describes the AI binding as a remote one; the stand-in replaces it.
delete workerOptions.ai;

const consumer = {
  ...workerOptions,
  name: "consumer",
  modules: true,
  scriptPath: main,
  modulesRoot: dirname(main),
  // The sources are ES modules, as wrangler's bundler reads them.
  modulesRules: [
    { type: "ESModule", include: ["**/*.js"] },
    ...(workerOptions.modulesRules ?? []),
  ],
  bindings: { ...workerOptions.bindings, INTERNAL_API_SECRET: secret },
  wrappedBindings: withAi ? { AI: { scriptName: "ai-standin" } } : {},
};

const mf = new Miniflare({
  host: "127.0.0.1",
  port: 0,
  handleRuntimeStdio(stdout, stderr) {
    for (const stream of [stdout, stderr]) {
      createInterface({ input: stream }).on("line", (line) => {
        process.stderr.write(`${line}\n`);
        const at = line.indexOf("cf-ingest ");
        if (at >= 0) events.push(parseLine(line.slice(at)));
      });
    }
  },
  workers: [
    consumer,
    {
      name: "harness",
      modules: true,
      script: "export default { fetch() { return new Response('harness'); } };",
      compatibilityDate: workerOptions.compatibilityDate,
      queueProducers: {
        INGEST: { queueName: ingestQueue },
        DEAD: { queueName: deadLetterQueue },
      },
      r2Buckets: { R2: bucket },
    },
    {
      name: "ai-standin",
      modules: true,
      scriptPath: join(here, "ai-standin.js"),
      serviceBindings: {
        async RECORDER(request) {
          const entry = await request.json();
          aiCalls.push(entry);
          const reply = aiReplies.length > 1 ? aiReplies.shift() : aiReplies[0];
          return Response.json(reply);
        },
      },
    },
  ],
});

/** @param {string} line */
function parseLine(line) {
  /** @type {Record<string, string>} */
  const fields = { at: String(Date.now()) };
  for (const match of line.matchAll(/(\w+)=("([^"]*)"|\S+)/g)) {
    fields[match[1]] = match[3] ?? match[2];
  }
  return fields;
}

/** @param {import("node:http").IncomingMessage} request */
async function readBody(request) {
  const chunks = [];
  for await (const chunk of request) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/**
 * @param {import("node:http").ServerResponse} response
 * @param {number} status
 * @param {unknown} data
 */
function send(response, status, data) {
  response.writeHead(status, { "Content-Type": "application/json" });
  response.end(JSON.stringify(data));
}

await mf.ready;
const producers = {
  ingest: await mf.getQueueProducer("INGEST", "harness"),
  dead: await mf.getQueueProducer("DEAD", "harness"),
};
const r2 = await mf.getR2Bucket("R2", "harness");

const server = createServer(async (request, response) => {
  try {
    const url = new URL(request.url ?? "/", "http://127.0.0.1");
    if (request.method === "GET" && url.pathname === "/ready") {
      return send(response, 200, { ready: true, queue: ingestQueue, deadLetterQueue, bucket });
    }
    if (request.method === "POST" && url.pathname === "/enqueue") {
      const { queue = "ingest", bodies } = JSON.parse(String(await readBody(request)));
      const producer = producers[/** @type {"ingest" | "dead"} */ (queue)];
      // sendBatch takes at most 100 messages.
      for (let i = 0; i < bodies.length; i += 100) {
        await producer.sendBatch(bodies.slice(i, i + 100).map((body) => ({ body })));
      }
      return send(response, 200, { sent: bodies.length, at: Date.now() });
    }
    if (request.method === "PUT" && url.pathname.startsWith("/r2/")) {
      const key = decodeURIComponent(url.pathname.slice("/r2/".length));
      const body = await readBody(request);
      await r2.put(key, new Uint8Array(body), {
        httpMetadata: {
          contentType: request.headers["content-type"] ?? "application/octet-stream",
        },
      });
      return send(response, 200, { key, size: body.length });
    }
    if (request.method === "POST" && url.pathname === "/ai/reply") {
      const given = JSON.parse(String(await readBody(request)));
      aiReplies = Array.isArray(given) ? given : [given];
      return send(response, 200, { ok: true });
    }
    if (request.method === "GET" && url.pathname === "/ai/calls") {
      return send(response, 200, aiCalls);
    }
    if (request.method === "GET" && url.pathname === "/events") {
      return send(response, 200, events);
    }
    return send(response, 404, { error: "no such harness route" });
  } catch (error) {
    return send(response, 500, { error: String(error) });
  }
});

server.listen(Number(portArg), "127.0.0.1", () => {
  const address = /** @type {import("node:net").AddressInfo} */ (server.address());
  console.log(JSON.stringify({ ready: `http://127.0.0.1:${address.port}` }));
});

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  server.close();
  await mf.dispose().catch(() => {});
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
