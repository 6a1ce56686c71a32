/** Producer thread for bench/ring.ts: sends `count` records by ring or by postMessage. */
import { parentPort, workerData } from 'node:worker_threads';
import { Ring } from '../../src/shared/ring.ts';

const { mode, count, size, buffer } = workerData as { mode: 'ring' | 'post'; count: number; size: number; buffer: SharedArrayBuffer };
const record = { type: 'stat', worker: 1, seq: 0, payload: 'x'.repeat(size) };

parentPort!.once('message', () => {
  if (mode === 'ring') {
    const ring = new Ring(buffer);
    for (let i = 0; i < count; i++) {
      record.seq = i;
      if (!ring.pushBlocking(record, 5_000)) throw new Error('consumer stalled');
    }
  } else {
    for (let i = 0; i < count; i++) {
      record.seq = i;
      parentPort!.postMessage(record);
    }
  }
});
