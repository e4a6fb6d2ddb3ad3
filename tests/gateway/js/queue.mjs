// The queue API one call at a time against the studio (requestMiddleware recipe):
//
//   node queue.mjs <base> <key>
//
// Job A: queue.submit → queue.status (logs) → queue.subscribeToStatus (polling, logs) →
// queue.result → queue.status without logs. Job B, submitted right after A: queue.status (still
// waiting) → queue.cancel → queue.status (logs) → queue.result (must reject) → queue.cancel again
// (must reject: already completed). Prints {a: {...}, b: {...}, calls}.
import { MODEL, args, describeError, main, studioClient, update } from "./harness.mjs";

async function rejection(promise) {
  try {
    const value = await promise;
    return { resolved: value ?? null };
  } catch (error) {
    return describeError(error);
  }
}

main(async () => {
  const { base, key } = args();
  const calls = [];
  const fal = studioClient({ base, key, via: "middleware", calls });

  const submitA = await fal.queue.submit(MODEL, {
    input: { prompt: "A lighthouse beam sweeping over a stormy sea", duration: "8", fps: "25", generate_audio: false },
  });
  const idA = submitA.request_id;
  const statusA = await fal.queue.status(MODEL, { requestId: idA, logs: true });

  const submitB = await fal.queue.submit(MODEL, { input: { prompt: "A clock tower that never strikes noon" } });
  const idB = submitB.request_id;
  const b = { submit: submitB, status_before_cancel: update(await fal.queue.status(MODEL, { requestId: idB })) };
  b.cancel = await rejection(fal.queue.cancel(MODEL, { requestId: idB }));
  b.status_after_cancel = update(await fal.queue.status(MODEL, { requestId: idB, logs: true }));
  b.result = await rejection(fal.queue.result(MODEL, { requestId: idB }));
  b.cancel_again = await rejection(fal.queue.cancel(MODEL, { requestId: idB }));

  const updates = [];
  const done = await fal.queue.subscribeToStatus(MODEL, {
    requestId: idA,
    logs: true,
    pollInterval: 250,
    onQueueUpdate: (status) => { updates.push(update(status)); },
  });
  const result = await fal.queue.result(MODEL, { requestId: idA });
  const statusNoLogs = await fal.queue.status(MODEL, { requestId: idA, logs: false });
  const a = {
    submit: submitA,
    status: update(statusA),
    updates,
    done: update(done),
    result,
    status_without_logs: update(statusNoLogs),
  };
  return { a, b, calls };
});
