/**
 * What the HTTP proxy path allocates per request: Shuttle (1 thread) with its worker's sampling
 * heap profiler on (SHUTTLE_HEAP_PROFILE_DIR), under h2load (h2c both sides) or, with
 * PROTOCOL=http1, wrk (HTTP/1.1 keep-alive both sides, 10 connections); prints bytes allocated per
 * request by function (V8 samples every 4 KiB; counts objects collected since, too), the figure
 * that drives GC time, and steadier from run to run than CPU time on this machine.
 *
 *   node bench/allocations.ts   (env: PROTOCOL=h2|http1 REQUESTS=200000 (h2) SECONDS=6 (http1))
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startH2Proxy, startNginx, startShuttle, stop } from './support/lib.ts';
import { printHeapProfiles } from './support/profiles.ts';

const REQUESTS = Number(process.env.REQUESTS ?? 200_000);
const dir = mkdtempSync(join(tmpdir(), 'shuttle-h2-alloc-'));
const profDir = mkdtempSync(join(tmpdir(), 'shuttle-h2-heap-'));
process.env.SHUTTLE_HEAP_PROFILE_DIR = profDir;

const HTTP1 = process.env.PROTOCOL === 'http1';
let requests = REQUESTS;
if (HTTP1) {
  const upstream = await startNginx(dir, 'upstream', (p) => `server { listen 127.0.0.1:${p}; location / { return 200 "hello from the upstream\\n"; } }`);
  const port = await freePort();
  const shuttle = await startShuttle({
    listeners: [{ name: 'web', address: `127.0.0.1:${port}`, protocol: 'http', access_log: false, virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, cluster: 'up' }] }] }],
    clusters: [{ name: 'up', hosts: [`127.0.0.1:${upstream.port}`] }],
  }, 1);
  try {
    const out = execFileSync('wrk', ['-t1', '-c10', `-d${process.env.SECONDS ?? 6}s`, `http://127.0.0.1:${port}/`], { encoding: 'utf8', timeout: 120_000 });
    requests = Number(/(\d+) requests in/.exec(out)![1]);
  } finally {
    await stop(shuttle, 60_000);
    upstream.child.kill('SIGTERM');
  }
} else {
  const { port, stop: stopProxy } = await startH2Proxy(dir);
  try {
    execFileSync('h2load', ['-n', String(REQUESTS), '-c', '10', '-m', '10', `http://127.0.0.1:${port}/`], { stdio: 'ignore', timeout: 120_000 });
  } finally {
    await stopProxy();
  }
}

printHeapProfiles(profDir, requests, 'request');
