/**
 * What an idle HTTP/1.1 keep-alive connection holds in a worker's V8 heap, by the stack that
 * allocated it: Shuttle (1 thread) with the live heap sampler (SHUTTLE_HEAP_LIVE_AFTER_MS), IDLE
 * connections opened and left idle after one request, the samples still alive then, per
 * connection. The figure bench:idle calls "worker V8 heap" per connection, taken apart.
 *
 *   node bench/idle-profile.ts     (env: IDLE=4000 BALANCE=reuseport|handoff)
 */
import net from 'node:net';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startNginx, startShuttleWith, stop } from './support/lib.ts';
const dir = mkdtempSync(join(tmpdir(), 'idlep-'));
const prof = mkdtempSync(join(tmpdir(), 'idlep-heap-'));
process.env.SHUTTLE_HEAP_PROFILE_DIR = prof;
const SETTLE_MS = 25_000; // started before the connections; they are all open and idle by then
process.env.SHUTTLE_HEAP_LIVE_AFTER_MS = String(SETTLE_MS);
const upstream = await startNginx(dir, 'upstream', (p) => `server { listen 127.0.0.1:${p}; location / { return 200 "hello\\n"; } }`);
const port = await freePort();
const { child } = await startShuttleWith({
  listeners: [{ name: 'web', address: `127.0.0.1:${port}`, protocol: 'http', access_log: false, virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ cluster: 'up' }] }] }],
  clusters: [{ name: 'up', hosts: [`127.0.0.1:${upstream.port}`] }],
}, 1, { balance: (process.env.BALANCE as 'reuseport') ?? 'reuseport' });
const socks: net.Socket[] = [];
const N = Number(process.env.IDLE ?? 4000);
for (let i = 0; i < N; i += 200) {
  await Promise.all(Array.from({ length: 200 }, () => new Promise<void>((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    s.once('data', () => resolve());
    socks.push(s);
  })));
}
await new Promise((r) => setTimeout(r, SETTLE_MS + 2000));
const f = readdirSync(prof).find((x) => x.includes('live'))!;
const p = JSON.parse(readFileSync(join(prof, f), 'utf8')) as { head: ProfileNode };
const by = new Map<string, number>();
interface ProfileNode { callFrame: { functionName: string; url: string; lineNumber: number }; selfSize?: number; children?: ProfileNode[] }
const walk = (n: ProfileNode) => {
  const fr = `${n.callFrame.functionName || '(anon)'} ${n.callFrame.url.replace(/^.*\/(src|node_modules|node:)/, '$1')}:${n.callFrame.lineNumber + 1}`;
  const self = n.selfSize ?? 0;
  if (self) by.set(fr, (by.get(fr) ?? 0) + self);
  for (const c of n.children ?? []) walk(c);
};
walk(p.head);
let total = 0; for (const v of by.values()) total += v;
console.log(`${N} idle connections (${process.env.BALANCE ?? 'reuseport'}): ${(total / N).toFixed(0)} bytes of live V8 heap per connection (sampled), by allocation site:`);
for (const [k, v] of [...by].sort((a, b) => b[1] - a[1]).slice(0, 30)) console.log((v / N).toFixed(0).padStart(6), 'B/conn', k);
for (const s of socks) s.destroy();
await stop(child); upstream.child.kill('SIGTERM');
