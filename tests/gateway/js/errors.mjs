// Calls the studio must refuse, as fal's client reports them (both recipes):
//
//   node errors.mjs <base> <key>
//
// `wrong_key`: fal.subscribe with a key the studio never issued → ApiError 401.
// `bad_duration`: fal.subscribe with `duration: 7` (LTX-2 takes 6, 8 or 10) → ValidationError 422
// whose fieldErrors name `duration`. Prints {"<via>": {wrong_key, bad_duration, calls}, ...}.
import { MODEL, ValidationError, args, describeError, main, studioClient } from "./harness.mjs";

async function refused(run) {
  try {
    return { resolved: await run() };
  } catch (error) {
    const described = describeError(error);
    if (error instanceof ValidationError) described.duration_errors = error.getFieldErrors("duration");
    return described;
  }
}

async function runVia(base, key, via) {
  const calls = [];
  const input = { prompt: "This must never be generated" };
  const wrong = studioClient({ base, key: `${key}-not-issued`, via, calls });
  const wrongKey = await refused(() => wrong.subscribe(MODEL, { input }));
  const fal = studioClient({ base, key, via, calls });
  const badDuration = await refused(() => fal.subscribe(MODEL, { input: { ...input, duration: 7 } }));
  return { wrong_key: wrongKey, bad_duration: badDuration, calls };
}

main(async () => {
  const { base, key } = args();
  return { middleware: await runVia(base, key, "middleware"), proxy: await runVia(base, key, "proxy") };
});
