/**
 * The time of the read being handled: performance.now() milliseconds, taken once per read batch.
 *
 * Why: one HTTP/2 read can carry tens of requests, and each request looks at the clock several
 * times (its start, the attempt's start, deadlines armed, the upstream time, the access log). A
 * `performance.now()` call crosses into C++ (2% of the HTTP/2 proxy's CPU in a profile). Within a
 * read the handling takes well under a millisecond, so one reading serves them all — Envoy's
 * dispatcher does the same (`approximateMonotonicTime`, updated once per loop iteration).
 * Outside a read (timers, callbacks) every call reads the clock. Monotonic across batches: a
 * batch's time is read at its first use, after everything that ran before the batch.
 */

let inBatch = false;
let batchTime = -1;

export function approximateNow(): number {
  if (!inBatch) return performance.now();
  if (batchTime < 0) batchTime = performance.now();
  return batchTime;
}

/** Called by the read batch (socket-output.ts) when its outermost read begins and ends. */
export function holdClock(held: boolean): void {
  inBatch = held;
  batchTime = -1;
}
