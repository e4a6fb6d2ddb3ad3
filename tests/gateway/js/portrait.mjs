// LTX-2.3 text-to-video in portrait (9:16, 24 fps) through `fal.subscribe`, as a short-form app asks.
//
//   node portrait.mjs <base> <key>
//
// Uses requestMiddleware (fal's hosts rewritten onto <base>/fal/). Prints {request_id, result}.
import { args, main, studioClient } from "./harness.mjs";

main(async () => {
  const { base, key } = args();
  const fal = studioClient({ base, key, via: "middleware", calls: [] });
  let requestId = null;
  const result = await fal.subscribe("fal-ai/ltx-2.3/text-to-video", {
    input: { prompt: "A skateboarder rolling down a hill, filmed vertically", duration: 6, fps: 24, aspect_ratio: "9:16" },
    pollInterval: 250,
    onEnqueue: (id) => { requestId = id; },
  });
  return { request_id: requestId, result };
});
