/**
 * What the HTTP/2 proxy path allocates per request: Shuttle (1 thread, h2c both sides) under h2load
 * with its worker's sampling heap profiler on (SHUTTLE_HEAP_PROFILE_DIR); prints bytes allocated
 * per request by function (V8 samples every 4 KiB; counts objects collected since, too), the
 * figure that drives GC time. `node bench/h2-allocations.ts` (env: REQUESTS=200000)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startNginx, startShuttle, stop } from './support/lib.ts';

const REQUESTS = Number(process.env.REQUESTS ?? 200_000);
const dir = mkdtempSync(join(tmpdir(), 'shuttle-h2-alloc-'));
const profDir = mkdtempSync(join(tmpdir(), 'shuttle-h2-heap-'));
process.env.SHUTTLE_HEAP_PROFILE_DIR = profDir;

const upstream = await startNginx(dir, 'upstream', (p) => `server { listen 127.0.0.1:${p} http2; location / { return 200 "hello from the upstream\\n"; } }`);
const port = await freePort();
const shuttle = await startShuttle({
  listeners: [{ name: 'h2', address: `127.0.0.1:${port}`, protocol: 'http', access_log: false, http: { codec: 'http2' }, virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ cluster: 'up' }] }] }],
  clusters: [{ name: 'up', protocol: 'http2', hosts: [`127.0.0.1:${upstream.port}`], http2: { max_connections: 1, max_concurrent_streams: 1000 } }],
}, 1);
try {
  execFileSync('h2load', ['-n', String(REQUESTS), '-c', '10', '-m', '10', `http://127.0.0.1:${port}/`], { stdio: 'ignore', timeout: 120_000 });
} finally {
  await stop(shuttle);
  upstream.child.kill('SIGTERM');
}

interface Node { callFrame: { functionName: string; url: string; lineNumber: number }; selfSize: number; children: Node[] }
for (const f of readdirSync(profDir).filter((f) => f.endsWith('.heapprofile'))) {
  const root = (JSON.parse(readFileSync(join(profDir, f), 'utf8')) as { head: Node }).head;
  const self = new Map<string, number>();
  let total = 0;
  const walk = (n: Node) => {
    const url = n.callFrame.url.replace(/^.*\/(src|node_modules)\//, '$1/');
    const key = `${n.callFrame.functionName || '(anon)'} ${url}:${n.callFrame.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + n.selfSize);
    total += n.selfSize;
    for (const c of n.children) walk(c);
  };
  walk(root);
  console.log(`${f}: ${(total / REQUESTS).toFixed(0)} bytes allocated per request (sampled)`);
  for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log(`${(v / REQUESTS).toFixed(1).padStart(8)} B/req  ${k}`);
}
