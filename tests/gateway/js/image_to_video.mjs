// Image-to-video with a Blob as `image_url`, through the server-proxy route (proxyUrl, when: "always"):
//
//   node image_to_video.mjs <base> <key> <path to a PNG>
//
// The client uploads the Blob by itself (storage upload initiate through the proxy, then a PUT
// straight to the returned upload_url) and submits the returned file URL. Prints {request_id,
// updates, result, calls}.
import { readFile } from "node:fs/promises";

import { args, main, studioClient, update } from "./harness.mjs";

const MODEL = "fal-ai/ltx-2/image-to-video";

main(async () => {
  const { base, key, rest: [png] } = args();
  if (!png) throw new Error("pass the path of the start image (PNG)");
  const image = new Blob([await readFile(png)], { type: "image/png" });
  const calls = [];
  const fal = studioClient({ base, key, via: "proxy", calls });
  const updates = [];
  let requestId = null;
  const result = await fal.subscribe(MODEL, {
    input: { prompt: "The four coloured squares start to spin", image_url: image, duration: "6" },
    logs: true,
    pollInterval: 250,
    onEnqueue: (id) => { requestId = id; },
    onQueueUpdate: (status) => { updates.push(update(status)); },
  });
  return { request_id: requestId, updates, result, calls };
});
