/**
 * gRPC load across 20 reloads and 3 in-place upgrades through the real CLI: long-lived
 * @grpc/grpc-js clients calling back to back must see no failed call. Reloads keep the HTTP/2
 * connections (new streams use the new generation); an upgrade drains them with GOAWAY, and the
 * clients move to the new process on their own.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { echoClient, echoServer, unary, type Msg } from './support/grpc.ts';
import { loop } from './support/load.ts';
import { closedPort } from './support/net.ts';
import { runCli, ShuttleProcess } from './support/shuttle.ts';
import { eventually } from './support/wait.ts';
import { alive } from './support/process.ts';

const cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

describe('gRPC across reloads and upgrades', () => {
  it('keeps 0 failed calls over 20 reloads and 3 upgrades', async () => {
    const blue = await echoServer('blue');
    const green = await echoServer('green');
    cleanup.push(() => blue.close(), () => green.close());
    const port = await closedPort();
    const dir = mkdtempSync(join(tmpdir(), 'shuttle-grpc-life-'));
    const configFile = join(dir, 'shuttle.json');
    const pidFile = join(dir, 'shuttle.pid');
    const drainMs = 2_000;
    const config = (color: 'blue' | 'green') => ({
      version: 1,
      admin: { address: '127.0.0.1:0' },
      drain_timeout: `${drainMs}ms`,
      listeners: [{ name: 'grpc', address: `127.0.0.1:${port}`, protocol: 'http', access_log: false, virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ cluster: color }] }] }],
      clusters: [{ name: 'blue', protocol: 'http2', hosts: [blue.address] }, { name: 'green', protocol: 'http2', hosts: [green.address] }],
    });
    writeFileSync(configFile, JSON.stringify(config('blue')));
    const first = new ShuttleProcess(configFile, { threads: 2, args: ['--pid-file', pidFile] });
    cleanup.push(() => first.stop());
    await first.ready();
    cleanup.push(async () => {
      const pid = Number(readFileSync(pidFile, 'utf8'));
      if (alive(pid)) {
        process.kill(pid, 'SIGTERM');
        await eventually(async () => alive(pid), (a) => !a, 15_000).catch(() => process.kill(pid, 'SIGKILL'));
      }
    });

    const clients = [echoClient(`127.0.0.1:${port}`), echoClient(`127.0.0.1:${port}`)];
    cleanup.push(() => clients.forEach((c) => c.close()));
    const seen = new Set<string>();
    const loops = clients.map((client, n) => loop(async () => {
      const { msg } = await unary(client, { text: `c${n}` }, { deadlineMs: 10_000 });
      seen.add(msg.text!.split(':')[0]);
    }));
    // A server stream across everything: its messages keep coming while generations change.
    const streamed = new Promise<number>((resolve, reject) => {
      let n = 0;
      const call = clients[0].ServerStream({ count: 4000, text: 's', delay_ms: 0 });
      call.on('data', (_m: Msg) => n++);
      call.on('error', reject);
      call.on('end', () => resolve(n));
    });

    for (let i = 0; i < 20; i++) {
      writeFileSync(configFile, JSON.stringify(config(i % 2 === 0 ? 'green' : 'blue')));
      const r = await runCli(['reload', '--pid-file', pidFile], { timeoutMs: 30_000 });
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
    }
    const pids = [first.pid];
    for (let i = 0; i < 3; i++) {
      const old = pids.at(-1)!;
      const r = await runCli(['upgrade', '--pid-file', pidFile], { timeoutMs: 60_000 });
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
      pids.push(Number(readFileSync(pidFile, 'utf8')));
      // The old process moves its HTTP/2 connections to the new one between streams (or drains
      // them with GOAWAY) and exits by the drain deadline.
      await eventually(async () => alive(old), (a) => !a, drainMs + 2_000 + 15_000);
    }
    await Promise.all(loops.map((l) => l.stop()));
    const counts = loops.map((l) => l.counts);
    const moved = first.logs.filter((l) => l.msg === 'upgrade: connections moved to the new process').map((l) => ({ migrated: l.migrated, drained: l.drained_by_reason, ms: l.ms }));
    console.log(`gRPC x20 reloads x3 upgrades: ${counts.map((c) => `${c.ok} ok / ${c.failed + c.refused} failed`).join(', ')}; stream ${await streamed} messages; served by ${[...seen].join(', ')}; connection migration per upgrade ${JSON.stringify(moved)}`);
    for (const c of counts) expect({ ...c, ok: c.ok > 50 }).toEqual({ ok: true, refused: 0, failed: 0, errors: [] });
    expect(await streamed).toBe(4000);
    expect(seen).toEqual(new Set(['blue', 'green']));
  }, 180_000);
});
