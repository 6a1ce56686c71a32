/**
 * A production install, as a container image makes it: a clean clone of this repository's HEAD,
 * `npm install --omit=dev` (from the npm cache when it has everything), then the CLI of that
 * install — on the Node it installed — proxies TCP, HTTP and Bolt, in supervised mode with the
 * image's health check, exactly as the Dockerfile runs it. Nothing of this checkout's
 * node_modules is visible to it. Skipped, saying why, when npm can reach neither a registry nor
 * its cache.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { boltConsumer, startBoltServer, type BoltUpstream } from './support/bolt-upstream.ts';
import { httpUpstream, type HttpUpstream } from './support/http.ts';
import { closedPort, echoServer } from './support/net.ts';
import { ShuttleProcess, testConfig } from './support/shuttle.ts';
import { eventually } from './support/wait.ts';
import { bootstrapFor, edsCluster, httpListener, loadAssignment, routeConfig, XdsControlPlane } from './support/xds-server.ts';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const INSTALL_TIMEOUT_MS = 240_000;

function run(cmd: string, args: string[], opts: { cwd?: string; timeoutMs: number }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: opts.cwd, timeout: opts.timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const cleanup: (() => Promise<unknown> | void)[] = [];
/** The production install made by the first test, for the next one. */
let installed: { dir: string; node: string; bin: string } | undefined;
afterAll(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

describe('production install', () => {
  it('a clean clone installed with --omit=dev proxies TCP, HTTP and Bolt', { timeout: INSTALL_TIMEOUT_MS + 120_000 }, async (ctx) => {
    const dir = mkdtempSync(join(tmpdir(), 'shuttle-prod-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const app = join(dir, 'shuttle');
    const clone = await run('git', ['clone', '--quiet', '--depth', '1', `file://${REPO}`, app], { timeoutMs: 60_000 });
    expect(clone.stderr).toBe('');
    expect(clone.code).toBe(0);

    const install = await run('npm', ['install', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: app, timeoutMs: INSTALL_TIMEOUT_MS });
    if (install.code !== 0 && /ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNREFUSED|ECONNRESET|ENOTCACHED|ENETUNREACH|network/i.test(install.stderr)) {
      ctx.skip(`npm could not reach a registry or its cache: ${install.stderr.split('\n').find((l) => /ERR/.test(l)) ?? install.stderr.slice(0, 200)}`);
    }
    expect(install.stderr).not.toMatch(/npm (ERR|error)/);
    expect(install.code).toBe(0);
    // Only runtime dependencies, and the committed lock file left as it is.
    for (const dev of ['vitest', 'typescript', 'sofa-rpc-node', 'undici', 'fast-check']) expect(existsSync(join(app, 'node_modules', dev)), dev).toBe(false);
    expect((await run('git', ['status', '--porcelain'], { cwd: app, timeoutMs: 10_000 })).stdout).toBe('');
    const node = join(app, 'node_modules/.bin/node');
    const bin = join(app, 'bin/shuttle.js');
    installed = { dir, node, bin };
    expect((await run(node, ['--version'], { timeoutMs: 10_000 })).stdout.trim()).toBe('v26.10.0');

    const up = await httpUpstream('app');
    const echo = await echoServer();
    const bolt: BoltUpstream = await startBoltServer('prod');
    const clients: { close(): Promise<void> }[] = [];
    cleanup.push(() => up.close(), () => echo.close(), () => void bolt.child.kill('SIGKILL'), async () => {
      for (const c of clients) await c.close().catch(() => {});
    });
    const adminPort = await closedPort();
    const config = join(dir, 'shuttle.json');
    writeFileSync(config, JSON.stringify(testConfig({
      admin: { address: `127.0.0.1:${adminPort}` },
      listeners: [
        { name: 'tcp', address: '127.0.0.1:0', protocol: 'tcp', cluster: 'echo' },
        { name: 'web', address: '127.0.0.1:0', protocol: 'http', virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ match: { regex: '/api/v[0-9]+/.*' }, cluster: 'app' }] }] },
        { name: 'bolt', address: '127.0.0.1:0', protocol: 'bolt', rpc: { routes: [{ match: { service_regex: 'com\\.example\\.Echo:.*' }, cluster: 'bolt' }] } },
      ],
      clusters: [{ name: 'echo', hosts: [echo.address] }, { name: 'app', hosts: [up.address] }, { name: 'bolt', hosts: [`127.0.0.1:${bolt.port}`] }],
    })));

    const validate = await run(node, [bin, 'validate', '-c', config], { timeoutMs: 30_000 });
    expect(validate.stderr).toBe('');
    expect(validate.stdout).toMatch(/valid \(3 listeners, 3 clusters\)/);

    // As the Dockerfile runs it: supervised, JSON logs.
    const shuttle = new ShuttleProcess(config, { node, bin, threads: 2, args: ['--supervise', '--log-format', 'json'] });
    cleanup.push(() => shuttle.stop());
    const { listeners } = await shuttle.ready();
    expect(shuttle.logs.filter((l) => l.level === 'fatal' || l.level === 'error')).toEqual([]);

    // TCP
    const echoed = await new Promise<string>((resolve, reject) => {
      const s = net.connect(listeners.tcp.port, '127.0.0.1', () => s.end('over tcp'));
      let got = '';
      s.on('data', (d) => (got += d));
      s.on('error', reject);
      s.on('close', () => resolve(got));
    });
    expect(echoed).toBe('over tcp');
    // HTTP (through a route regex: the RE2 engine is a runtime dependency)
    const res = await fetch(`http://127.0.0.1:${listeners.web.port}/api/v1/items`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('app GET /api/v1/items');
    // Bolt, both a call and an error reply (which sofa-bolt-node encodes at run time)
    const invoke = await boltConsumer(listeners.bolt.port, clients);
    expect(await invoke('echo', ['over bolt'])).toBe('prod:over bolt');
    const unrouted = await boltConsumer(listeners.bolt.port, clients, 'com.example.Unrouted');
    await expect(unrouted('echo', ['x'])).rejects.toThrow(/route|SHUTTLE_E/i);

    // The image's HEALTHCHECK command.
    const ready = await run(node, [bin, 'ready', '--admin', `127.0.0.1:${adminPort}`], { timeoutMs: 15_000 });
    expect(ready.code).toBe(0);

    shuttle.signal('SIGTERM');
    expect(await shuttle.waitForExit(20_000)).toBe(0);
    const after = await run(node, [bin, 'ready', '--admin', `127.0.0.1:${adminPort}`], { timeoutMs: 15_000 });
    expect(after.code).toBe(1);
  });

  it('the same install runs as an xDS client (the Envoy protos and gRPC are runtime dependencies)', { timeout: 60_000 }, async (ctx) => {
    const inst = installed;
    if (!inst) return ctx.skip('no production install (see the test above)');
    const up = await httpUpstream('xds-app');
    const cp = new XdsControlPlane();
    await cp.start();
    cleanup.push(() => up.close(), () => cp.kill());
    cp.set('cds', [edsCluster('app')]);
    cp.set('eds', [loadAssignment('app', [{ port: up.port }])]);
    cp.set('lds', [httpListener('web', 0, 'routes')]);
    cp.set('rds', [routeConfig('routes', [{ match: { prefix: '/' }, route: { cluster: 'app' } }])]);
    const file = join(inst.dir, 'bootstrap.json');
    writeFileSync(file, JSON.stringify(bootstrapFor(cp)));
    const shuttle = new ShuttleProcess(file, { node: inst.node, bin: inst.bin, threads: 1, configFlag: '--bootstrap' });
    cleanup.push(() => shuttle.stop());
    const { admin } = await shuttle.ready();
    const bound = await eventually(async () => (await (await fetch(`${admin}/listeners`)).json()) as { name: string; address: string }[], (l) => l.length === 1, 20_000);
    const res = await fetch(`http://${bound[0].address}/via-xds`);
    expect(await res.text()).toBe('xds-app GET /via-xds');
    expect(cp.nacks()).toEqual([]);
  });
});
