/**
 * Ring vs postMessage between the same two threads (worker → main), in one run.
 * The same record object goes both ways: msgpackr into the SharedArrayBuffer ring, or the
 * structured clone of postMessage. Reported: records/s and MB/s (of encoded payload), medians.
 *
 *   npm run bench:ring        (env: REPS=5)
 */
import { Worker } from 'node:worker_threads';
import { Ring } from '../src/shared/ring.ts';
import { median, table } from './support/lib.ts';

const REPS = Number(process.env.REPS ?? 5);
const PRODUCER = new URL('./support/ring-producer.ts', import.meta.url);
const CASES = [
  { name: 'small (~40 B)', size: 0, count: 400_000 },
  { name: '1 KiB', size: 1024, count: 100_000 },
];

async function run(mode: 'ring' | 'post', size: number, count: number): Promise<{ rate: number; mbps: number }> {
  const ring = Ring.create(1 << 20);
  const worker = new Worker(PRODUCER, { workerData: { mode, count, size, buffer: ring.buffer } });
  await new Promise((r) => worker.once('online', r));
  let received = 0;
  let bytes = 0;
  const started = performance.now();
  await new Promise<void>((resolve, reject) => {
    worker.once('error', reject);
    const check = (v: unknown) => {
      const r = v as { seq: number; payload: string };
      if (r.seq !== received) reject(new Error(`out of order: ${r.seq} != ${received}`));
      received++;
      bytes += r.payload.length + 30;
    };
    if (mode === 'post') {
      worker.on('message', (v) => {
        check(v);
        if (received === count) resolve();
      });
    } else {
      const stop = new AbortController();
      void ring.consume((v) => {
        check(v);
        if (received === count) {
          stop.abort();
          resolve();
        }
      }, stop.signal, 100);
    }
    worker.postMessage('go');
  });
  const seconds = (performance.now() - started) / 1000;
  await worker.terminate();
  return { rate: count / seconds, mbps: bytes / 1e6 / seconds };
}

const rows: string[][] = [];
for (const c of CASES) {
  const results: Record<'ring' | 'post', { rate: number; mbps: number }[]> = { ring: [], post: [] };
  for (let rep = 0; rep < REPS; rep++) {
    for (const mode of ['ring', 'post'] as const) results[mode].push(await run(mode, c.size, c.count));
  }
  const m = (mode: 'ring' | 'post', k: 'rate' | 'mbps') => median(results[mode].map((r) => r[k]));
  rows.push(
    [c.name, 'ring (msgpackr)', m('ring', 'rate').toFixed(0), m('ring', 'mbps').toFixed(1), (m('ring', 'rate') / m('post', 'rate')).toFixed(2)],
    [c.name, 'postMessage', m('post', 'rate').toFixed(0), m('post', 'mbps').toFixed(1), '1.00'],
  );
}
console.log(`\nRing vs postMessage, worker → main, medians of ${REPS} runs (node ${process.version})\n`);
console.log(table(['record', 'channel', 'records/s', 'MB/s', 'x postMessage'], rows));
