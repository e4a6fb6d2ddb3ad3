// Shared by the scripts in this folder: a fal client (`@fal-ai/client`, as published) pointed at the
// studio's fal-compatible gateway by one of fal-protocol.md §3.4's JS recipes, a fetch that records
// every HTTP call and refuses anything off this machine, and the one-JSON-line output contract.
//
// Each script is run by tests/gateway/test_js_client.py as `node <script> <base> <key> [...]`
// (or with STUDIO_URL / STUDIO_KEY in the environment), prints exactly one JSON line on stdout and
// exits 0; on any error it prints the error on stderr and exits non-zero.
import { ApiError, ValidationError, createFalClient } from "@fal-ai/client";

export { ApiError, ValidationError };

export const MODEL = "fal-ai/ltx-2/text-to-video";
const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);

/** What one status object carried (logs: the whole list on COMPLETED, elsewhere only their count). */
export function update(status) {
  const seen = { status: status.status, request_id: status.request_id };
  if ("queue_position" in status) seen.queue_position = status.queue_position;
  if ("logs" in status) {
    seen.logs = status.status === "COMPLETED" || status.logs === null ? status.logs : status.logs.length;
  }
  if ("metrics" in status) seen.metrics = status.metrics;
  if ("error" in status) seen.error = status.error;
  if ("error_type" in status) seen.error_type = status.error_type;
  return seen;
}

export function args() {
  const [base = process.env.STUDIO_URL, key = process.env.STUDIO_KEY, ...rest] = process.argv.slice(2);
  if (!base || !key) {
    throw new Error("usage: node <script> <studio base URL> <studio API key> [...] (or STUDIO_URL, STUDIO_KEY)");
  }
  return { base: base.replace(/\/+$/, ""), key, rest };
}

/** A fetch for the client that records each call (method, path, proxy target, auth) and never leaves this machine. */
export function recordingFetch(base, calls) {
  return async (input, init = {}) => {
    const url = new URL(typeof input === "string" ? input : input.url);
    if (!LOOPBACK.has(url.hostname)) {
      throw new Error(`the fal client tried to reach ${url.href} (only the studio on this machine is allowed)`);
    }
    const headers = new Headers(init.headers ?? {});
    const auth = headers.get("authorization");
    calls.push({
      method: (init.method ?? "GET").toUpperCase(),
      url: url.href.startsWith(base) ? url.href.slice(base.length) : url.href,
      target: headers.get("x-fal-target-url"),
      auth: auth === null ? null : auth.replace(/ .*/, " …"),
      content_type: headers.get("content-type"),
      // What the client sent: JSON bodies whole (submits, upload initiates), a Blob by size and type.
      body: typeof init.body === "string" ? JSON.parse(init.body)
        : init.body instanceof Blob ? { blob_size: init.body.size, blob_type: init.body.type } : null,
    });
    return fetch(input, init);
  };
}

/**
 * A client reaching the studio by recipe A (`via: "middleware"`: rewrite fal's hosts to `<base>/fal/`)
 * or recipe B (`via: "proxy"`: `proxyUrl: {url: "<base>/fal/proxy", when: "always"}`). The studio key
 * is the client's `credentials`, so it goes out as `Authorization: Key <key>`.
 */
export function studioClient({ base, key, via, calls }) {
  const config = { credentials: key, fetch: recordingFetch(base, calls) };
  if (via === "middleware") {
    config.requestMiddleware = async (request) => ({
      ...request,
      url: request.url
        .replace(/^https:\/\/(queue\.)?fal\.run\//, `${base}/fal/`)
        .replace(/^https:\/\/rest\.fal\.ai\//, `${base}/fal/`),
    });
  } else if (via === "proxy") {
    config.proxyUrl = { url: `${base}/fal/proxy`, when: "always" };
  } else {
    throw new Error(`unknown way to reach the studio: ${via}`);
  }
  return createFalClient(config);
}

/** What a rejected call looked like, for the test to assert on. */
export function describeError(error) {
  if (!(error instanceof Error)) {
    return { name: typeof error, message: String(error), api_error: false, validation_error: false };
  }
  const out = {
    name: error.name,
    message: error.message,
    api_error: error instanceof ApiError,
    validation_error: error instanceof ValidationError,
  };
  if (error instanceof ApiError) {
    Object.assign(out, {
      status: error.status,
      body: error.body ?? null,
      request_id: error.requestId,
    });
    if (error instanceof ValidationError) {
      out.field_errors = error.fieldErrors;
    }
  }
  return out;
}

/**
 * Run `fn`, print its result as one JSON line; on error print it on stderr and exit 1. A client that
 * waits forever (polling never sees COMPLETED, a stream never ends) is stopped after
 * JS_DEADLINE_SECONDS (default 45) with exit 2, before the test's own timeout.
 */
export async function main(fn) {
  const deadline = Number(process.env.JS_DEADLINE_SECONDS || 45);
  setTimeout(() => {
    process.stderr.write(`gave up: the fal client was still waiting after ${deadline} s\n`);
    process.exit(2);
  }, deadline * 1000).unref();
  try {
    const result = await fn();
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } catch (error) {
    process.stderr.write(`${error?.stack ?? error}\n${JSON.stringify(describeError(error))}\n`);
    process.exitCode = 1;
  }
}
