// `fal.subscribe` end to end against the studio, for one or more cases run side by side.
//
//   node subscribe.mjs <base> <key> <case> [<case> ...]
//
// A case is `<via>:<mode>`: via `middleware` (requestMiddleware rewriting fal's hosts) or `proxy`
// (proxyUrl with when: "always"), mode `polling` or `streaming`. Each case submits its own
// text-to-video job with `logs: true`, records onEnqueue's request id and every onQueueUpdate, and
// ends with the result. Prints {"<case>": {request_id, updates, result, calls}, ...}.
import { MODEL, args, main, studioClient, update } from "./harness.mjs";

async function runCase(base, key, name) {
  const [via, mode] = name.split(":");
  const calls = [];
  const fal = studioClient({ base, key, via, calls });
  const updates = [];
  let requestId = null;
  const result = await fal.subscribe(MODEL, {
    input: { prompt: `A paper boat drifting down a rain gutter (${name})`, duration: "6", fps: "25" },
    logs: true,
    mode,
    pollInterval: 250,
    onEnqueue: (id) => { requestId = id; },
    onQueueUpdate: (status) => { updates.push(update(status)); },
  });
  return { request_id: requestId, updates, result, calls };
}

main(async () => {
  const { base, key, rest } = args();
  if (rest.length === 0) throw new Error("name at least one case, e.g. middleware:polling");
  const results = await Promise.all(rest.map((name) => runCase(base, key, name)));
  return Object.fromEntries(rest.map((name, i) => [name, results[i]]));
});
