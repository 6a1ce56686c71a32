/**
 * `shuttle start --supervise` through the real CLI: the supervisor stays the parent, forwards
 * HUP (reload) and USR2 (upgrade) to the serving process, follows two in-place upgrades (the
 * second one's process is its child's grandchild, and its parent is gone by then),
 * forwards TERM and exits with the serving process's code.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ShuttleProcess, testConfig } from './support/shuttle.ts';
import { closedPort } from './support/net.ts';
import { eventually } from './support/wait.ts';
import { alive } from './support/process.ts';

const cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function setup(body: string) {
  const dir = mkdtempSync(join(tmpdir(), 'shuttle-supervise-'));
  const configFile = join(dir, 'shuttle.json');
  const pidFile = join(dir, 'shuttle.pid');
  const port = await closedPort();
  const write = (text: string) => writeFileSync(configFile, JSON.stringify(testConfig({
    drain_timeout: '1s',
    listeners: [{ name: 'web', address: `127.0.0.1:${port}`, protocol: 'http', access_log: false, virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ direct_response: { status: 200, body: text } }] }] }],
    clusters: [{ name: 'unused', hosts: ['127.0.0.1:1'] }],
  })));
  write(body);
  const supervisor = new ShuttleProcess(configFile, { threads: 1, args: ['--supervise', '--pid-file', pidFile] });
  const servingPid = () => Number(readFileSync(pidFile, 'utf8'));
  cleanup.push(async () => {
    await supervisor.stop();
    try {
      const pid = servingPid();
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    } catch {}
  });
  const get = async () => (await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(10_000) })).text();
  return { supervisor, write, get, servingPid, pidFile };
}

describe('shuttle start --supervise', () => {
  it('forwards reload and upgrade signals, follows two upgrades, and exits 0 on TERM', { timeout: 120_000 }, async () => {
    const { supervisor, write, get, servingPid } = await setup('one');
    await supervisor.ready();
    const first = servingPid();
    expect(first).not.toBe(supervisor.pid);
    expect(await get()).toBe('one');
    const supervising = (pid: number) => supervisor.waitForLog((l) => l.msg === 'supervisor: now supervising this process' && l.supervised === pid, 30_000, `supervising ${pid}`);

    // HUP to the supervisor reloads the child.
    write('two');
    supervisor.signal('SIGHUP');
    await eventually(get, (b) => b === 'two', 15_000);

    // USR2: the child upgrades; its successor (not the supervisor's child) becomes the supervised one.
    const pids = [first];
    for (const body of ['three', 'four']) {
      write(body);
      supervisor.signal('SIGUSR2');
      const next = await eventually(async () => servingPid(), (p) => !pids.includes(p), 30_000);
      await supervising(next);
      const previous = pids[pids.length - 1];
      pids.push(next);
      await eventually(async () => alive(previous), (a) => !a, 15_000);
      expect(supervisor.exitCode).toBeUndefined(); // the supervisor stays
      expect(await get()).toBe(body);
    }
    // Signals reach the newest process: a reload after two upgrades.
    write('five');
    supervisor.signal('SIGHUP');
    await eventually(get, (b) => b === 'five', 15_000);

    supervisor.signal('SIGTERM');
    expect(await supervisor.waitForExit(20_000)).toBe(0);
    // (It told the supervisor its exit code just before it exits: gone a moment later.)
    await eventually(async () => alive(pids[2]), (a) => !a, 10_000);
    await supervisor.waitForLog((l) => l.msg.startsWith('supervisor: the supervised process is gone') && l.code === 0);
  });

  it("exits with the child's code when it dies", async () => {
    const { supervisor, servingPid } = await setup('x');
    await supervisor.ready();
    process.kill(servingPid(), 'SIGKILL');
    expect(await supervisor.waitForExit(15_000)).toBe(137);
  });

  it('exits 1 when an upgraded process dies without saying how', async () => {
    const { supervisor, write, servingPid } = await setup('a');
    await supervisor.ready();
    const first = servingPid();
    write('b');
    supervisor.signal('SIGUSR2');
    const next = await eventually(async () => servingPid(), (p) => p !== first, 30_000);
    await supervisor.waitForLog((l) => l.msg === 'supervisor: now supervising this process' && l.supervised === next, 30_000);
    await eventually(async () => alive(first), (a) => !a, 15_000);
    process.kill(next, 'SIGKILL');
    expect(await supervisor.waitForExit(15_000)).toBe(1);
  });
});
