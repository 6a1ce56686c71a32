/**
 * An upgrade must not leave the old process's connections open in the new one. Sockets handed
 * from the main thread to a worker lose close-on-exec, so the new process inherited every
 * connection open at the upgrade; when the old process closed one at its drain deadline, the
 * client never saw the close and hung (a keep-alive client's next request waited forever).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { closedPort, echoServer } from './support/net.ts';
import { runCli, ShuttleProcess, testConfig } from './support/shuttle.ts';

const cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** Resolves when the server closes the connection, or with 'open' after `ms`. */
function closedWithin(socket: net.Socket, ms: number): Promise<'closed' | 'open'> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('open'), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve('closed');
    });
  });
}

describe('upgrade and open connections', () => {
  it('closes the old process connections for good when it drains (none stays open in the new process)', async () => {
    const echo = await echoServer();
    cleanup.push(() => echo.close());
    const dir = mkdtempSync(join(tmpdir(), 'shuttle-upgrade-fds-'));
    const configFile = join(dir, 'shuttle.json');
    const pidFile = join(dir, 'shuttle.pid');
    const [web, tcp] = [await closedPort(), await closedPort()];
    const drainMs = 1_000;
    writeFileSync(configFile, JSON.stringify(testConfig({
      drain_timeout: `${drainMs}ms`,
      // This is about the drain path (connection migration moves these instead: migration.e2e.test.ts).
      connection_migration: false,
      listeners: [
        { name: 'web', address: `127.0.0.1:${web}`, protocol: 'http', access_log: false, virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ direct_response: { status: 200, body: 'ok' } }] }] },
        { name: 'tcp', address: `127.0.0.1:${tcp}`, protocol: 'tcp', cluster: 'echo', access_log: false },
      ],
      clusters: [{ name: 'echo', hosts: [echo.address] }],
    })));
    const shuttle = new ShuttleProcess(configFile, { threads: 1, args: ['--pid-file', pidFile] });
    cleanup.push(async () => {
      await shuttle.stop();
      try {
        process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGTERM');
      } catch {}
    });
    await shuttle.ready();

    // An idle keep-alive HTTP connection and an idle TCP-proxied one, open across the upgrade.
    const http = net.connect(web, '127.0.0.1');
    http.on('error', () => {});
    await new Promise<void>((resolve) => {
      http.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
      http.once('data', () => resolve());
    });
    const proxied = net.connect(tcp, '127.0.0.1');
    proxied.on('error', () => {});
    await new Promise<void>((resolve) => {
      proxied.write('hi');
      proxied.once('data', () => resolve());
    });

    const up = await runCli(['upgrade', '--pid-file', pidFile], { timeoutMs: 60_000 });
    expect(up.code).toBe(0);
    const newPid = Number(readFileSync(pidFile, 'utf8'));
    const received = await shuttle.waitForLog((l) => l.msg === 'upgrade: listening sockets received' && l.pid === newPid);
    expect(received.inherited_connections_closed).toBeGreaterThanOrEqual(2);
    // The old process closes both at its drain deadline; the client sees it (bound: drain × 10).
    const [h, t] = await Promise.all([closedWithin(http, drainMs * 10), closedWithin(proxied, drainMs * 10)]);
    expect([h, t]).toEqual(['closed', 'closed']);
    // And the new process serves new connections.
    expect(await (await fetch(`http://127.0.0.1:${web}/`)).text()).toBe('ok');
  });
});
