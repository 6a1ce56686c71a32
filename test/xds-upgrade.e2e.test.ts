/**
 * In-place upgrade of a Shuttle run by xDS (`start --bootstrap`, then `shuttle upgrade`): the new
 * process starts from the config the old one's control plane made, so the listeners it inherits
 * serve at once, even while the control plane is down; once the control plane is back, the new
 * process's own stream re-syncs and later pushes apply. Real CLI, the test ADS control plane
 * (test/support/xds-server.ts), node:http upstreams, undici clients under load throughout.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import YAML from 'yaml';
import { httpUpstream } from './support/http.ts';
import { loop } from './support/load.ts';
import { closedPort } from './support/net.ts';
import { stopByPidFile } from './support/process.ts';
import { runCli, ShuttleProcess, writeTempConfig } from './support/shuttle.ts';
import { eventually } from './support/wait.ts';
import { bootstrapFor, edsCluster, httpListener, loadAssignment, routeConfig, XdsControlPlane } from './support/xds-server.ts';

const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

describe('shuttle upgrade with --bootstrap (xDS)', () => {
  it('keeps serving the xDS config across an upgrade made while the control plane is down, then re-syncs', { timeout: 90_000 }, async () => {
    const [a, b] = await Promise.all([httpUpstream('a'), httpUpstream('b')]);
    cleanup.push(() => a.close(), () => b.close());
    const cp = new XdsControlPlane();
    await cp.start();
    cleanup.push(() => cp.kill());
    const webPort = await closedPort();
    const routesTo = (cluster: string) => routeConfig('web-routes', [{ name: 'all', match: { prefix: '/' }, route: { cluster } }]);
    cp.set('cds', [edsCluster('web-a'), edsCluster('web-b')]);
    cp.set('eds', [loadAssignment('web-a', [{ port: a.port }]), loadAssignment('web-b', [{ port: b.port }])]);
    cp.set('lds', [httpListener('web', webPort, 'web-routes')]);
    cp.set('rds', [routesTo('web-a')]);

    const dir = mkdtempSync(join(tmpdir(), 'shuttle-xds-upgrade-'));
    const pidFile = join(dir, 'shuttle.pid');
    const shuttle = new ShuttleProcess(writeTempConfig(YAML.stringify(bootstrapFor(cp, 'upgrade-test')), 'yaml'), { configFlag: '--bootstrap', threads: 1, args: ['--pid-file', pidFile] });
    cleanup.push(() => stopByPidFile(pidFile));
    await shuttle.ready();
    const oldPid = shuttle.pid;

    const agent = new Agent({ keepAliveTimeout: 30_000, connections: 4 });
    cleanup.push(() => agent.close());
    const servedBy = async (reuse: boolean) => {
      const res = await request(`http://127.0.0.1:${webPort}/`, reuse ? { dispatcher: agent } : { headers: { connection: 'close' }, reset: true });
      const body = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}: ${body}`);
      return res.headers['x-upstream'] as string;
    };
    await eventually(() => servedBy(true).catch(() => ''), (u) => u === 'a', 15_000);

    // Keep-alive and new-connection clients, all through the upgrade.
    const seen = { keepAlive: new Set<string>(), fresh: new Set<string>() };
    const keepAlive = loop(async () => void seen.keepAlive.add(await servedBy(true)));
    const fresh = loop(async () => void seen.fresh.add(await servedBy(false)));
    cleanup.push(() => keepAlive.stop(), () => fresh.stop());
    await eventually(async () => keepAlive.counts.ok + fresh.counts.ok, (n) => n >= 50, 10_000);

    // The control plane goes away; the upgrade happens without it.
    cp.kill();
    const up = await runCli(['upgrade', '--pid-file', pidFile], { timeoutMs: 60_000 });
    expect(up.code, up.stdout + up.stderr).toBe(0);
    const newPid = Number(readFileSync(pidFile, 'utf8'));
    expect(newPid).not.toBe(oldPid);
    await shuttle.waitForLog((l) => l.msg === 'shuttle ready' && l.pid === newPid, 30_000);
    // The new process serves the inherited listener from the old one's xDS config.
    const okBefore = keepAlive.counts.ok + fresh.counts.ok;
    await eventually(async () => keepAlive.counts.ok + fresh.counts.ok, (n) => n >= okBefore + 50, 15_000);
    expect(await servedBy(false)).toBe('a');

    // The control plane comes back on its port: the new process connects, re-syncs, and applies a push.
    await cp.start();
    await shuttle.waitForLog((l) => l.msg === 'xds: connected' && l.pid === newPid, 30_000);
    cp.set('rds', [routesTo('web-b')]);
    await eventually(() => servedBy(false), (u) => u === 'b', 15_000);
    await eventually(() => servedBy(true), (u) => u === 'b', 15_000);

    await keepAlive.stop();
    await fresh.stop();
    expect(keepAlive.counts.failed + keepAlive.counts.refused, keepAlive.counts.errors.join('\n')).toBe(0);
    expect(fresh.counts.failed + fresh.counts.refused, fresh.counts.errors.join('\n')).toBe(0);
    expect(keepAlive.counts.ok).toBeGreaterThan(100);
    expect(fresh.counts.ok).toBeGreaterThan(50);
    // The old process handed over and left.
    await shuttle.waitForLog((l) => l.msg === 'stopped' && l.pid === oldPid, 30_000);
    // Nothing the new process received was refused.
    expect(cp.nacks()).toEqual([]);
  });
});
