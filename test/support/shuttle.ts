/**
 * Runs the real `shuttle` CLI as a child process and reads its JSON log lines, so tests wait for
 * events (a log line, a port) instead of sleeping.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const SHUTTLE_BIN = fileURLToPath(new URL('../../bin/shuttle.js', import.meta.url));

export type LogLine = Record<string, any> & { msg: string; level: string };

export interface StartOptions {
  threads?: number;
  balance?: 'handoff' | 'reuseport';
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Another install's CLI and Node (the production-install test); default: this checkout's. */
  bin?: string;
  node?: string;
  /** How the file is given: `-c` (a Shuttle config, the default) or `--bootstrap` (an xDS bootstrap). */
  configFlag?: '-c' | '--bootstrap';
}

export function writeTempConfig(config: unknown, ext: 'json' | 'yaml' = 'json'): string {
  const dir = mkdtempSync(join(tmpdir(), 'shuttle-test-'));
  const file = join(dir, `shuttle.${ext}`);
  writeFileSync(file, typeof config === 'string' ? config : JSON.stringify(config, null, 2));
  return file;
}

/** Runs a shuttle sub-command to completion. */
export function runCli(args: string[], opts: { node?: string; timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(opts.node ?? process.execPath, [SHUTTLE_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`shuttle ${args.join(' ')} did not finish in ${opts.timeoutMs ?? 15_000}ms`));
    }, opts.timeoutMs ?? 15_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export class ShuttleProcess {
  readonly child: ChildProcess;
  readonly logs: LogLine[] = [];
  stderr = '';
  private readonly waiters = new Set<{ pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }>();
  private exited: Promise<number | null>;
  private readonly stdoutEnded: Promise<void>;
  exitCode: number | null | undefined;

  constructor(configFile: string, opts: StartOptions = {}) {
    const args = [opts.bin ?? SHUTTLE_BIN, 'start', opts.configFlag ?? '-c', configFile, '--threads', String(opts.threads ?? 2), '--balance', opts.balance ?? 'handoff', ...(opts.args ?? [])];
    this.child = spawn(opts.node ?? process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } });
    let buffered = '';
    this.child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (!line.trim()) continue;
        let parsed: LogLine;
        try {
          parsed = JSON.parse(line);
        } catch {
          parsed = { level: 'raw', msg: line };
        }
        this.logs.push(parsed);
        for (const w of this.waiters) if (w.pred(parsed)) {
          this.waiters.delete(w);
          w.resolve(parsed);
        }
      }
    });
    this.child.stderr!.on('data', (d) => (this.stderr += d));
    this.stdoutEnded = new Promise((resolve) => this.child.stdout!.once('end', () => resolve()));
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => {
      this.exitCode = code;
      resolve(code);
    }));
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves with the first log line (past or future) that matches. */
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs = 10_000, what = 'log line'): Promise<LogLine> {
    const seen = this.logs.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const waiter = { pred, resolve: (l: LogLine) => { clearTimeout(timer); resolve(l); } };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`timed out after ${timeoutMs}ms waiting for ${what}; stderr: ${this.stderr.slice(-2000)}; last logs: ${JSON.stringify(this.logs.slice(-5))}`));
      }, timeoutMs);
      this.waiters.add(waiter);
      // After exit, lines may still be in the pipe: give up only once stdout has ended (or 1 s on,
      // as a process that upgraded leaves its successor holding the same pipe). A successor that
      // has logged is still writing to that pipe: then only the timeout ends the wait.
      this.exited.then((code) => Promise.race([this.stdoutEnded, new Promise((r) => setTimeout(r, 1_000))]).then(() => code)).then((code) => {
        if (!this.waiters.has(waiter)) return;
        if (this.logs.some((l) => typeof l.pid === 'number' && l.pid !== this.pid)) return;
        this.waiters.delete(waiter);
        clearTimeout(timer);
        reject(new Error(`shuttle exited (${code}) before ${what}; stderr: ${this.stderr.slice(-2000)}`));
      });
    });
  }

  async ready(): Promise<{ admin: string; listeners: Record<string, { host: string; port: number }> }> {
    const line = await this.waitForLog((l) => l.msg === 'shuttle ready', 15_000, '"shuttle ready"');
    const listeners: Record<string, { host: string; port: number }> = {};
    for (const l of line.listeners as { name: string; address: string }[]) {
      const i = l.address.lastIndexOf(':');
      listeners[l.name] = { host: l.address.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(l.address.slice(i + 1)) };
    }
    return { admin: `http://${line.admin}`, listeners };
  }

  /** ready(), with each listener's port by name. */
  async ports(): Promise<{ admin: string; ports: Record<string, number> }> {
    const ready = await this.ready();
    return { admin: ready.admin, ports: Object.fromEntries(Object.entries(ready.listeners).map(([k, v]) => [k, v.port])) };
  }

  signal(sig: NodeJS.Signals): void {
    this.child.kill(sig);
  }

  waitForExit(timeoutMs = 15_000): Promise<number | null> {
    return Promise.race([
      this.exited,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`shuttle did not exit in ${timeoutMs}ms`)), timeoutMs).unref()),
    ]);
  }

  /** Stops the process (SIGTERM, then SIGKILL if it lingers); safe to call twice. */
  async stop(): Promise<void> {
    if (this.exitCode !== undefined) return;
    this.child.kill('SIGTERM');
    try {
      await this.waitForExit(10_000);
    } catch {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
}

export function startShuttle(config: unknown, opts: StartOptions = {}): ShuttleProcess {
  return new ShuttleProcess(writeTempConfig(config), opts);
}

/** A config with an admin on an ephemeral loopback port, for tests. */
export function testConfig(parts: { listeners: unknown[]; clusters: unknown[]; drain_timeout?: string; [k: string]: unknown }): Record<string, unknown> {
  return { version: 1, admin: { address: '127.0.0.1:0' }, log: { level: 'info' }, ...parts };
}
