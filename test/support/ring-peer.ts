/**
 * A worker thread on the other end of a ring, for the ring tests.
 *   role "producer": pushes `count` records { seq, pad } (pad length varies), retrying when full.
 *   role "consumer": blocks with Atomics.wait until `count` records arrive, then posts a summary.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Ring } from '../../src/shared/ring.ts';

const { role, buffer, count } = workerData as { role: 'producer' | 'consumer'; buffer: SharedArrayBuffer; count: number };
const ring = new Ring(buffer);
const pause = new Int32Array(new SharedArrayBuffer(4));

if (role === 'producer') {
  let fullRetries = 0;
  for (let seq = 0; seq < count; seq++) {
    const record = { seq, pad: 'p'.repeat(seq % 97) };
    while (!ring.push(record)) {
      fullRetries++;
      Atomics.wait(pause, 0, 0, 1); // the consumer needs a moment: back off 1 ms
    }
  }
  parentPort!.postMessage({ done: true, fullRetries });
} else {
  let expected = 0;
  let outOfOrder = 0;
  while (expected < count) {
    ring.waitSync(1_000);
    ring.drain((v) => {
      const r = v as { seq: number; pad: string };
      if (r.seq !== expected || r.pad.length !== r.seq % 97) outOfOrder++;
      expected++;
    });
  }
  parentPort!.postMessage({ received: expected, outOfOrder });
}
