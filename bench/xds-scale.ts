/**
 * xDS at scale (issue 17): a control plane pushes 1,000 clusters with 10,000 endpoints and 1,000
 * routes at once to a Shuttle on 2 worker threads; then one endpoint changes among the 10,000.
 *
 *   npm run bench:xds-scale                 (REPS=3 CLUSTERS=1000 ENDPOINTS=10 THREADS=2 VARIANT=sotw|delta|both)
 *
 * Measured, per variant (state of the world, delta):
 *   - initial sync: from Shuttle's start to "xds: initialized" (its own after_ms: every type
 *     received, mapped, validated and running on every worker); RSS before the push and after;
 *   - one EDS change: Shuttle's own apply_ms (from the DiscoveryResponse's arrival to every
 *     worker running the new endpoints); and from the control plane's set() (which encodes and
 *     sends the response) to requests on new connections being served by the new endpoint (a
 *     real node:http upstream): the first one, and THREADS × 4 in a row (so every worker).
 * The control plane is test/support/xds-server.ts (the one the e2e tests prove against
 * @grpc/grpc-js-xds). Endpoints other than the probe's are addresses nothing listens on: no
 * health checks, so nothing connects to them.
 */
import http from 'node:http';
import { request } from 'undici';
import YAML from 'yaml';
import { median, rssBytes, table } from './support/lib.ts';
import { ShuttleProcess, writeTempConfig } from '../test/support/shuttle.ts';
import { closedPort } from '../test/support/net.ts';
import { bootstrapFor, edsCluster, httpListener, loadAssignment, routeConfig, XdsControlPlane } from '../test/support/xds-server.ts';

const REPS = Number(process.env.REPS ?? 3);
const CLUSTERS = Number(process.env.CLUSTERS ?? 1000);
const ENDPOINTS = Number(process.env.ENDPOINTS ?? 10);
const THREADS = Number(process.env.THREADS ?? 2);
const VARIANTS = (process.env.VARIANT ?? 'both') === 'both' ? (['sotw', 'delta'] as const) : [process.env.VARIANT as 'sotw' | 'delta'];

/** A node:http upstream that names itself. */
function upstream(name: string): Promise<{ port: number; close(): void }> {
  const server = http.createServer((_, res) => res.end(name));
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ port: (server.address() as { port: number }).port, close: () => server.close() })));
}

/** Cluster i's endpoints: 127.0.0.2 (nothing listens), ports unique within the cluster. */
function assignment(i: number, probePort?: number) {
  const endpoints = Array.from({ length: ENDPOINTS }, (_, j) => ({ port: 20_000 + j }));
  const la = loadAssignment(`svc-${i}`, probePort === undefined ? endpoints : [{ port: probePort }]);
  if (probePort === undefined) for (const e of (la.endpoints as any)[0].lb_endpoints) e.endpoint.address.socket_address.address = '127.0.0.2';
  return la;
}

async function servedBy(port: number, path: string): Promise<string> {
  const res = await request(`http://127.0.0.1:${port}${path}`, { reset: true, headers: { connection: 'close' } });
  return res.body.text();
}

async function run(variant: 'sotw' | 'delta') {
  const [a, b] = await Promise.all([upstream('a'), upstream('b')]);
  const cp = new XdsControlPlane();
  await cp.start();
  const webPort = await closedPort();
  const probe = CLUSTERS - 1;
  const eds = (probePort: number) => Array.from({ length: CLUSTERS }, (_, i) => assignment(i, i === probe ? probePort : undefined));
  cp.set('cds', Array.from({ length: CLUSTERS }, (_, i) => edsCluster(`svc-${i}`)));
  cp.set('eds', eds(a.port));
  cp.set('lds', [httpListener('web', webPort, 'web-routes')]);
  // 1,000 routes: a path prefix per service, in one virtual host (first match wins: the probe's is last).
  cp.set('rds', [routeConfig('web-routes', Array.from({ length: CLUSTERS }, (_, i) => ({ name: `svc-${i}`, match: { prefix: `/svc-${i}/` }, route: { cluster: `svc-${i}` } })))]);

  const shuttle = new ShuttleProcess(writeTempConfig(YAML.stringify(bootstrapFor(cp, 'scale', variant)), 'yaml'), { configFlag: '--bootstrap', threads: THREADS });
  try {
    await shuttle.waitForLog((l) => l.msg === 'xds: started', 30_000);
    const rssStart = rssBytes(shuttle.pid);
    const init = await shuttle.waitForLog((l) => l.msg === 'xds: initialized: the first complete config serves', 300_000);
    const path = `/svc-${probe}/x`;
    for (let i = 0; i < 20; i++) if ((await servedBy(webPort, path)) !== 'a') throw new Error('the probe cluster is not served by its endpoint');
    await new Promise((r) => setTimeout(r, 1_000));
    const rssSynced = rssBytes(shuttle.pid);

    // One endpoint change among CLUSTERS × ENDPOINTS: the probe cluster moves from a to b.
    const applied = shuttle.logs.length;
    const t0 = performance.now();
    cp.set('eds', eds(b.port));
    // Every worker: THREADS × 4 consecutive new connections all answered by b.
    let streak = 0;
    let firstMs = 0;
    while (streak < THREADS * 4) {
      streak = (await servedBy(webPort, path)) === 'b' ? streak + 1 : 0;
      if (streak === 1 && firstMs === 0) firstMs = performance.now() - t0;
      if (performance.now() - t0 > 60_000) throw new Error('the EDS change did not apply within 60 s');
    }
    const edsMs = performance.now() - t0;
    const line = await shuttle.waitForLog((l) => l.msg === 'xds: generation applied' && shuttle.logs.indexOf(l) >= applied, 30_000);
    return { initMs: Number(init.after_ms), rssStart, rssSynced, firstMs, edsMs, edsApplyMs: Number(line.apply_ms) };
  } catch (err) {
    if (process.env.DEBUG) for (const l of shuttle.logs) console.error(JSON.stringify(l).slice(0, 400));
    throw err;
  } finally {
    shuttle.signal('SIGTERM');
    await shuttle.waitForExit(30_000).catch(() => shuttle.signal('SIGKILL'));
    cp.kill();
    a.close();
    b.close();
  }
}

const rows: (string | number)[][] = [];
for (const variant of VARIANTS) {
  const runs: Awaited<ReturnType<typeof run>>[] = [];
  for (let r = 0; r < REPS; r++) {
    runs.push(await run(variant));
    process.stderr.write(`${variant} rep ${r + 1}/${REPS}: ${JSON.stringify(runs.at(-1))}\n`);
  }
  const m = (f: (x: (typeof runs)[number]) => number) => median(runs.map(f));
  rows.push([
    variant, `${CLUSTERS} × ${ENDPOINTS}`, Math.round(m((x) => x.initMs)), (m((x) => x.rssStart) / 2 ** 20).toFixed(0), (m((x) => x.rssSynced) / 2 ** 20).toFixed(0),
    Math.round(m((x) => x.edsApplyMs)), Math.round(m((x) => x.firstMs)), Math.round(m((x) => x.edsMs)),
  ]);
}
console.log(`xDS scale: ${CLUSTERS} clusters, ${CLUSTERS * ENDPOINTS} endpoints, ${CLUSTERS} routes; ${THREADS} worker threads; medians of ${REPS} runs`);
console.log(table(['variant', 'clusters × endpoints', 'initial sync ms', 'RSS before MiB', 'RSS synced MiB', 'EDS change: response → all workers ms (apply_ms)', 'set() → first request on new endpoint ms', 'set() → 8 in a row on it ms'], rows));
