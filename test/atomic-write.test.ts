/**
 * Files other processes read while Shuttle rewrites them (the pid file at each upgrade, the reload
 * and upgrade status files) are replaced by rename: a reader on another thread, reading as fast as
 * it can, never sees an empty or partial file. (Rewritten in place, it did: a supervisor read pid 0.)
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { writeAtomically } from '../src/config/reload-status.ts';

describe('writeAtomically', () => {
  it('never lets a concurrent reader see an empty or partial file', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'shuttle-atomic-')), 'shuttle.pid');
    writeFileSync(path, '1\n');
    const stop = new SharedArrayBuffer(4);
    const reader = new Worker(`
      const { readFileSync } = require('node:fs');
      const { parentPort, workerData } = require('node:worker_threads');
      const stop = new Int32Array(workerData.stop);
      let reads = 0; const bad = [];
      while (Atomics.load(stop, 0) === 0) {
        const t = readFileSync(workerData.path, 'utf8');
        reads++;
        if (!/^[1-9]\\d*\\n$/.test(t) && bad.length < 10) bad.push(t);
      }
      parentPort.postMessage({ reads, bad });
    `, { eval: true, workerData: { path, stop } });
    const result = new Promise<{ reads: number; bad: string[] }>((resolve) => reader.once('message', resolve));
    await new Promise((r) => reader.once('online', r));
    for (let i = 0; i < 3000; i++) writeAtomically(path, `${100000 + i}\n`);
    Atomics.store(new Int32Array(stop), 0, 1);
    const { reads, bad } = await result;
    await reader.terminate();
    expect(reads).toBeGreaterThan(100);
    expect(bad).toEqual([]);
  });
});
