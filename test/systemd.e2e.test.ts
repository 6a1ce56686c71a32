/**
 * The systemd notify protocol (Type=notify), checked against a unix datagram socket the test
 * listens on as systemd would (NOTIFY_SOCKET): READY=1 with MAINPID at start, MAINPID of the new
 * process after an in-place upgrade; under --supervise the supervisor is the main process and
 * says READY=1 alone. Skipped where systemd-notify or python3 (the datagram listener) is missing.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli, ShuttleProcess, testConfig } from './support/shuttle.ts';
import { eventually } from './support/wait.ts';

function has(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const available = has('systemd-notify', ['--version']) && has('python3', ['--version']);

const cleanup: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

// Binds a unix datagram socket and prints each datagram as a JSON string line.
const LISTENER = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps("listening"), flush=True)
while True:
    print(json.dumps(s.recv(65536).decode()), flush=True)
`;

async function notifySocket(dir: string): Promise<{ path: string; messages: string[] }> {
  const path = join(dir, 'notify.sock');
  const messages: string[] = [];
  const child: ChildProcess = spawn('python3', ['-c', LISTENER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  cleanup.push(() => void child.kill('SIGKILL'));
  let buffered = '';
  await new Promise<void>((resolve) => child.stdout!.on('data', (d) => {
    buffered += d;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const m = JSON.parse(buffered.slice(0, nl)) as string;
      buffered = buffered.slice(nl + 1);
      if (m === 'listening') resolve();
      else if (!m.startsWith('BARRIER=')) messages.push(m); // systemd-notify's acknowledgement round trip (without --no-block)

    }
  }));
  return { path, messages };
}

function setup(dir: string) {
  const configFile = join(dir, 'shuttle.json');
  const pidFile = join(dir, 'shuttle.pid');
  writeFileSync(configFile, JSON.stringify(testConfig({
    drain_timeout: '1s',
    listeners: [{ name: 'web', address: '127.0.0.1:0', protocol: 'http', virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ direct_response: { status: 200 } }] }] }],
    clusters: [{ name: 'unused', hosts: ['127.0.0.1:1'] }],
  })));
  return { configFile, pidFile };
}

const fields = (m: string) => Object.fromEntries(m.split('\n').filter(Boolean).map((kv) => kv.split('=') as [string, string]));

describe.skipIf(!available)('systemd notify protocol', () => {
  it('sends READY=1 with MAINPID at start, and the new MAINPID after an upgrade', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shuttle-systemd-'));
    const sock = await notifySocket(dir);
    const { configFile, pidFile } = setup(dir);
    const shuttle = new ShuttleProcess(configFile, { threads: 1, args: ['--pid-file', pidFile], env: { NOTIFY_SOCKET: sock.path } });
    cleanup.push(async () => {
      await shuttle.stop();
      try {
        process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGTERM');
      } catch {}
    });
    await shuttle.ready();
    await eventually(async () => sock.messages.length, (n) => n >= 1);
    expect(fields(sock.messages[0])).toEqual({ READY: '1', MAINPID: String(shuttle.pid) });

    const up = await runCli(['upgrade', '--pid-file', pidFile], { timeoutMs: 60_000 });
    expect(up.code).toBe(0);
    const newPid = Number(readFileSync(pidFile, 'utf8'));
    await eventually(async () => sock.messages.length, (n) => n >= 2);
    // systemd follows the new process instead of stopping the service when the old one exits.
    expect(fields(sock.messages[1])).toEqual({ READY: '1', MAINPID: String(newPid) });
  });

  it('under --supervise, only the supervisor notifies (it stays the main process across upgrades)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shuttle-systemd-'));
    const sock = await notifySocket(dir);
    const { configFile, pidFile } = setup(dir);
    const supervisor = new ShuttleProcess(configFile, { threads: 1, args: ['--supervise', '--pid-file', pidFile], env: { NOTIFY_SOCKET: sock.path } });
    cleanup.push(() => supervisor.stop());
    await supervisor.ready();
    await eventually(async () => sock.messages.length, (n) => n >= 1);
    expect(fields(sock.messages[0])).toEqual({ READY: '1', MAINPID: String(supervisor.pid) });
    const first = Number(readFileSync(pidFile, 'utf8'));
    supervisor.signal('SIGUSR2');
    const next = await eventually(async () => Number(readFileSync(pidFile, 'utf8')), (p) => p !== first, 30_000);
    await supervisor.waitForLog((l) => l.msg === 'supervisor: now supervising this process' && l.supervised === next, 30_000);
    // The upgraded process would have said MAINPID=<its pid> by now; it says nothing.
    await new Promise((r) => setTimeout(r, 500));
    expect(sock.messages).toHaveLength(1);
    supervisor.signal('SIGTERM');
    expect(await supervisor.waitForExit(20_000)).toBe(0);
  });
});
