/**
 * TLS termination against nginx, in one run, with the same certificate (ECDSA P-256) and the same
 * cipher (TLS 1.3, TLS_AES_128_GCM_SHA256), both proxying HTTP/1.1 to the same nginx upstream:
 *
 *   - handshakes: wrk with `Connection: close`, so every request is a new connection and a full
 *     handshake (wrk keeps no session); handshakes per proxy CPU-second.
 *   - keep-alive: wrk over kept TLS connections; requests per proxy CPU-second.
 *   - bulk: curl downloads a large file over one TLS connection; MB/s and proxy CPU ms per MB.
 *
 * Baselines: nginx (1 worker) and a plain node:https proxy (Node's TLS stack, the floor).
 * CPU time is the proxy's own (all its processes and threads, from /proc). Medians of REPS runs.
 *
 *   npm run bench:tls        (env: REPS=3 DURATION=5 CONNECTIONS=10 BULK_MB=256)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuSplit, freePort, has, inTurn, median, processFamily, spawnUntil, startNginx, startShuttle, stop, table } from './support/lib.ts';

const REPS = Number(process.env.REPS ?? 3);
const DURATION = Number(process.env.DURATION ?? 5);
const CONNECTIONS = Number(process.env.CONNECTIONS ?? 10);
const BULK_MB = Number(process.env.BULK_MB ?? 256);
const CIPHER = 'TLS_AES_128_GCM_SHA256';
const dir = mkdtempSync(join(tmpdir(), 'shuttle-tls-bench-'));
const NODE_PROXY = fileURLToPath(new URL('./support/node-proxy.ts', import.meta.url));

for (const cmd of ['wrk', 'nginx', 'curl', 'openssl']) {
  if (!has(cmd)) {
    console.error(`this benchmark needs ${cmd}: apt-get install -y wrk nginx-light curl openssl`);
    process.exit(1);
  }
}

// One certificate for both proxies.
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=bench.test',
  '-addext', 'subjectAltName=DNS:bench.test', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
writeFileSync(join(dir, 'bulk.bin'), Buffer.alloc(BULK_MB * 1024 * 1024, 7));

const upstream = await startNginx(dir, 'upstream', (p) => `server { listen 127.0.0.1:${p} backlog=4096;
  location = /bulk { alias ${join(dir, 'bulk.bin')}; }
  location / { return 200 "hello from the upstream\\n"; } }`, 'sendfile on;');

interface Target { name: string; port: number; pids: () => number[]; stop(): Promise<void> }

async function targets(): Promise<Target[]> {
  const out: Target[] = [];
  {
    const port = await freePort();
    const child = await startShuttle({
      listeners: [{
        name: 'tls', address: `127.0.0.1:${port}`, protocol: 'http', access_log: false, backlog: 4096,
        tls: { certificates: [{ cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') }], alpn: ['http/1.1'], ciphers: CIPHER },
        virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ cluster: 'up', timeout: '0' }] }],
      }],
      clusters: [{ name: 'up', hosts: [`127.0.0.1:${upstream.port}`] }],
    }, 1);
    out.push({ name: 'shuttle 1t', port, pids: () => [child.pid!], stop: () => stop(child) });
  }
  {
    const { port, child } = await startNginx(dir, 'proxy', (p) => `upstream up { server 127.0.0.1:${upstream.port}; keepalive 64; }
server { listen 127.0.0.1:${p} ssl backlog=4096;
  ssl_certificate ${join(dir, 'cert.pem')}; ssl_certificate_key ${join(dir, 'key.pem')};
  ssl_protocols TLSv1.3; ssl_conf_command Ciphersuites ${CIPHER}; ssl_session_cache off; ssl_session_tickets off;
  location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; } }`);
    out.push({ name: 'nginx 1w', port, pids: () => processFamily(child.pid!), stop: () => stop(child) });
  }
  {
    // Node's own TLS stack under the simplest proxy: the floor a Node program starts from.
    const port = await freePort();
    const { child } = await spawnUntil(process.execPath, [NODE_PROXY, String(port), String(upstream.port), join(dir, 'cert.pem'), join(dir, 'key.pem')], (l) => l === 'ready');
    out.push({ name: 'node:https', port, pids: () => [child.pid!], stop: () => stop(child) });
  }
  return out;
}

function cpuOf(pids: number[]): number {
  return pids.reduce((n, p) => {
    const s = cpuSplit(p);
    return n + s.user + s.sys;
  }, 0);
}

function wrk(port: number, close: boolean): number {
  const args = ['-t', '1', '-c', String(CONNECTIONS), '-d', `${DURATION}s`, ...(close ? ['-H', 'Connection: close'] : []), `https://127.0.0.1:${port}/`];
  const out = execFileSync('wrk', args, { encoding: 'utf8', timeout: (DURATION + 30) * 1000 });
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (errors) throw new Error(`wrk saw ${errors[1]} non-2xx responses on port ${port}`);
  return requests;
}

function bulk(port: number): { seconds: number; bytes: number } {
  const out = execFileSync('curl', ['-sk', '--http1.1', '--ciphers', 'ECDHE-ECDSA-AES128-GCM-SHA256', '--tls13-ciphers', CIPHER, '-o', '/dev/null', '-w', '%{time_total} %{size_download}', `https://127.0.0.1:${port}/bulk`], { encoding: 'utf8', timeout: 120_000 });
  const [seconds, bytes] = out.trim().split(' ').map(Number);
  if (bytes !== BULK_MB * 1024 * 1024) throw new Error(`bulk download got ${bytes} bytes on port ${port}`);
  return { seconds, bytes };
}

interface Sample { handshakesPerCpu: number; handshakesPerSec: number; keepAlivePerCpu: number; keepAlivePerSec: number; bulkMBs: number; bulkCpuMsPerMB: number }
const samples = new Map<string, Sample[]>();
const all = await targets();
try {
  for (const t of all) wrk(t.port, false); // warm-up
  for (let rep = 0; rep < REPS; rep++) {
    for (const t of inTurn(all, rep)) {
      const pids = t.pids();
      let c0 = cpuOf(pids);
      const hs = wrk(t.port, true);
      let c1 = cpuOf(pids);
      const handshakesPerCpu = hs / (c1 - c0);
      const handshakesPerSec = hs / DURATION;
      c0 = cpuOf(pids);
      const ka = wrk(t.port, false);
      c1 = cpuOf(pids);
      const keepAlivePerCpu = ka / (c1 - c0);
      c0 = cpuOf(pids);
      const b = bulk(t.port);
      c1 = cpuOf(pids);
      const mb = b.bytes / 1024 / 1024;
      const s: Sample = { handshakesPerCpu, handshakesPerSec, keepAlivePerCpu, keepAlivePerSec: ka / DURATION, bulkMBs: mb / b.seconds, bulkCpuMsPerMB: ((c1 - c0) * 1000) / mb };
      samples.set(t.name, [...(samples.get(t.name) ?? []), s]);
      process.stderr.write(`rep ${rep + 1}/${REPS} ${t.name.padEnd(10)} handshakes ${handshakesPerSec.toFixed(0)}/s (${handshakesPerCpu.toFixed(0)}/CPU-s) keep-alive ${s.keepAlivePerSec.toFixed(0)}/s (${keepAlivePerCpu.toFixed(0)}/CPU-s) bulk ${s.bulkMBs.toFixed(0)} MB/s (${s.bulkCpuMsPerMB.toFixed(2)} CPU ms/MB)\n`);
    }
  }
} finally {
  for (const t of all) await t.stop();
  await stop(upstream.child);
}

const med = (name: string, k: keyof Sample) => median((samples.get(name) ?? []).map((s) => s[k]));
const ratio = (name: string, k: keyof Sample) => (med(name, k) / med('nginx 1w', k)).toFixed(2);
console.log(`\nTLS termination (TLS 1.3 ${CIPHER}, ECDSA P-256), wrk -t1 -c${CONNECTIONS} -d${DURATION}s, bulk ${BULK_MB} MiB over one connection; medians of ${REPS} runs (node ${process.version}, ${new Date().toISOString()})\n`);
console.log(table(
  ['target', 'handshakes/s', 'handshakes per CPU-s', 'x nginx', 'keep-alive req/s', 'req per CPU-s', 'x nginx', 'bulk MB/s', 'x nginx', 'CPU ms/MB'],
  all.map((t) => [
    t.name,
    med(t.name, 'handshakesPerSec').toFixed(0), med(t.name, 'handshakesPerCpu').toFixed(0), ratio(t.name, 'handshakesPerCpu'),
    med(t.name, 'keepAlivePerSec').toFixed(0), med(t.name, 'keepAlivePerCpu').toFixed(0), ratio(t.name, 'keepAlivePerCpu'),
    med(t.name, 'bulkMBs').toFixed(0), ratio(t.name, 'bulkMBs'), med(t.name, 'bulkCpuMsPerMB').toFixed(2),
  ]),
));
console.log('\nTargets: handshakes per CPU-second ≥ 0.8× nginx; bulk MB/s ≥ 0.7× nginx.');
