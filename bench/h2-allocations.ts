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
import { startH2Proxy } from './support/lib.ts';

const REQUESTS = Number(process.env.REQUESTS ?? 200_000);
const dir = mkdtempSync(join(tmpdir(), 'shuttle-h2-alloc-'));
const profDir = mkdtempSync(join(tmpdir(), 'shuttle-h2-heap-'));
process.env.SHUTTLE_HEAP_PROFILE_DIR = profDir;

const { port, shuttle, stop: stopProxy } = await startH2Proxy(dir);
try {
  execFileSync('h2load', ['-n', String(REQUESTS), '-c', '10', '-m', '10', `http://127.0.0.1:${port}/`], { stdio: 'ignore', timeout: 120_000 });
} finally {
  await stopProxy();
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
