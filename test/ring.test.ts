import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { Ring, RingRecordTooLarge } from '../src/shared/ring.ts';

const PEER = new URL('./support/ring-peer.ts', import.meta.url);

function peer(role: 'producer' | 'consumer', ring: Ring, count: number): { worker: Worker; result: Promise<any> } {
  const worker = new Worker(PEER, { workerData: { role, buffer: ring.buffer, count } });
  const result = new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  return { worker, result };
}

describe('shared ring (SPSC over SharedArrayBuffer)', () => {
  it('carries records in order across threads, wrapping many times (producer in a worker)', async () => {
    const ring = Ring.create(4096);
    const count = 30_000;
    const { worker, result } = peer('producer', ring, count);
    const seen: number[] = [];
    let bytes = 0;
    const stop = new AbortController();
    const consuming = ring.consume((v) => {
      const r = v as { seq: number; pad: string };
      expect(r.pad.length).toBe(r.seq % 97);
      bytes += r.pad.length + 12;
      seen.push(r.seq);
      if (seen.length === count) stop.abort();
    }, stop.signal, 100);
    await consuming;
    const summary = await result;
    await worker.terminate();
    expect(seen.length).toBe(count);
    expect(seen.every((s, i) => s === i)).toBe(true);
    expect(bytes / ring.capacity).toBeGreaterThan(100); // it wrapped around over a hundred times
    expect(ring.dropped).toBe(summary.fullRetries); // every full push was counted
    expect(ring.used).toBe(0);
  });

  it('wakes a consumer blocked in Atomics.wait (consumer in a worker)', async () => {
    const ring = Ring.create(1024);
    const count = 5_000;
    const { worker, result } = peer('consumer', ring, count);
    for (let seq = 0; seq < count; seq++) {
      while (!ring.push({ seq, pad: 'p'.repeat(seq % 97) })) await new Promise((r) => setImmediate(r));
    }
    expect(await result).toEqual({ received: count, outOfOrder: 0 });
    await worker.terminate();
  });

  it('drops and counts a record when full, and accepts again once drained', () => {
    const ring = Ring.create(256);
    let pushed = 0;
    while (ring.push({ n: pushed, s: 'x'.repeat(20) })) pushed++;
    expect(pushed).toBeGreaterThan(3);
    expect(ring.dropped).toBe(1);
    expect(ring.push({ n: -1 })).toBe(ring.capacity - ring.used >= 4 + 5); // only fits if room is left
    const first = ring.shift() as { n: number };
    expect(first.n).toBe(0);
    expect(ring.push({ n: pushed, s: 'x'.repeat(20) })).toBe(true);
    const rest: number[] = [];
    ring.drain((v) => rest.push((v as { n: number }).n));
    expect(rest.filter((n) => n >= 0)).toEqual(Array.from({ length: pushed }, (_, i) => i + 1));
  });

  it('rejects a record larger than the ring with a clear error', () => {
    const ring = Ring.create(256);
    expect(() => ring.push({ blob: 'y'.repeat(1024) })).toThrow(RingRecordTooLarge);
    expect(() => ring.push({ blob: 'y'.repeat(1024) })).toThrow(/cannot fit a ring of 256 bytes/);
    expect(ring.used).toBe(0);
    expect(ring.dropped).toBe(0);
    // A record that exactly fills the ring is fine.
    expect(ring.pushBytes(new Uint8Array(252).fill(7))).toBe(true);
    expect(ring.shiftBytes()).toEqual(new Uint8Array(252).fill(7));
  });

  it('keeps working when the free-running counters wrap past 2^32', () => {
    const ring = Ring.create(64);
    const header = new Int32Array(ring.buffer, 0, 4);
    header[0] = header[1] = -20; // head = tail = 2^32 - 20
    const out: number[] = [];
    for (let i = 0; i < 40; i++) {
      expect(ring.pushBytes(new Uint8Array([i, i, i, i, i, i]))).toBe(true);
      if (i % 2 === 0) continue; // let two records pile up, then take both
      for (let b = ring.shiftBytes(); b; b = ring.shiftBytes()) out.push(b[0]);
    }
    expect(out).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(header[1]).toBeGreaterThan(0); // tail wrapped to a small positive number
  });
});
