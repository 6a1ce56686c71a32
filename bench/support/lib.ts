/** Shared pieces of the benchmarks: processes, CPU time, percentiles, tables. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';

export const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** utime + stime of a process and all its threads, in seconds (from /proc). */
export function cpuSeconds(pid: number): number {
  const { user, sys } = cpuSplit(pid);
  return user + sys;
}

/** User and kernel CPU seconds of a process (all its threads) so far. */
export function cpuSplit(pid: number): { user: number; sys: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]) / TICKS_PER_SECOND, sys: Number(fields[12]) / TICKS_PER_SECOND };
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/**
 * The targets in the order of this repetition: reversed every other one, so that no target always
 * runs first or right after the same neighbour (this machine drifts within a run, and a target
 * pays for the one before it: its GC, its sockets in TIME_WAIT).
 */
export function inTurn<T>(targets: readonly T[], rep: number): readonly T[] {
  return rep % 2 === 0 ? targets : [...targets].reverse();
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** utime + stime of one thread of a process (`tid` = `pid` for its main thread), in seconds. */
export function threadCpuSeconds(pid: number, tid: number): number {
  const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** Resident set size of a process, in bytes (VmRSS from /proc). */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** The hard open-file limit a child can raise its soft limit to (`ulimit -Hn`). */
export function hardFileLimit(): number {
  const v = execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim();
  return v === 'unlimited' ? 1 << 20 : Number(v);
}

/**
 * `[cmd, args]` rewritten to run under a raised open-file limit (`ulimit -n`, up to the hard
 * limit); `exec` keeps the pid the command's own.
 */
export function withFileLimit(nofile: number | undefined, cmd: string, args: string[]): [string, string[]] {
  if (!nofile) return [cmd, args];
  return ['sh', ['-c', `ulimit -n ${Math.min(nofile, hardFileLimit())} && exec "$@"`, 'sh', cmd, ...args]];
}

/** Spawns a process and resolves once a line of its stdout matches. */
export function spawnUntil(cmd: string, args: string[], ready: (line: string) => boolean, timeoutMs = 15_000, nofile?: number): Promise<{ child: ChildProcess; line: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(...withFileLimit(nofile, cmd, args), { stdio: ['ignore', 'pipe', 'inherit'] });
    let buf = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} not ready in ${timeoutMs}ms`));
    }, timeoutMs);
    const onData = (d: Buffer) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (ready(line)) {
          clearTimeout(timer);
          child.stdout!.off('data', onData);
          child.stdout!.resume(); // keep draining so the child never blocks on a full pipe
          resolve({ child, line });
          return;
        }
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} exited (${code}) before it was ready`));
    });
  });
}

/** Resolves when a TCP port accepts connections. */
export async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${port} not open in ${timeoutMs}ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** SIGTERM, then SIGKILL after `graceMs` (a profiled Shuttle needs longer: its workers write their profiles as they stop). */
export function stop(child: ChildProcess, graceMs = 5_000): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(cells[0]), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.slice(1).map(line)].join('\n');
}

const SHUTTLE_BIN = new URL('../../bin/shuttle.js', import.meta.url).pathname;

/**
 * Writes `config` to a temp file and starts Shuttle on it; resolves once it logs "shuttle ready".
 * `checkout`: another checkout of Shuttle to run instead (a baseline, e.g. a git worktree).
 */
export async function startShuttle(config: object, threads: number, checkout?: string): Promise<ChildProcess> {
  return (await startShuttleWith(config, threads, { checkout })).child;
}

export interface ShuttleOptions {
  /** Another checkout of Shuttle to run instead (a baseline, e.g. a git worktree). */
  checkout?: string;
  /** `--balance`: handoff (the default) or reuseport (every listener needs a fixed port). */
  balance?: 'handoff' | 'reuseport';
  /** Open-file limit to run under (many connections). */
  nofile?: number;
}

/** startShuttle with options; also resolves the admin address Shuttle logged when ready. */
export async function startShuttleWith(config: object, threads: number, opts: ShuttleOptions = {}): Promise<{ child: ChildProcess; admin: string }> {
  const { mkdtempSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const file = join(mkdtempSync(join(tmpdir(), 'shuttle-bench-')), 'shuttle.json');
  writeFileSync(file, JSON.stringify({ version: 1, admin: { address: '127.0.0.1:0' }, log: { level: 'warn' }, ...config }));
  const bin = opts.checkout ? join(opts.checkout, 'bin', 'shuttle.js') : SHUTTLE_BIN;
  const args = [bin, 'start', '-c', file, '--threads', String(threads), '--log-level', 'info', ...(opts.balance ? ['--balance', opts.balance] : [])];
  const { child, line } = await spawnUntil(process.execPath, args, (l) => l.includes('"shuttle ready"'), 15_000, opts.nofile);
  return { child, admin: String(JSON.parse(line).admin ?? '') };
}

/** Whether a command is on the PATH. */
export function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The pid and its children (nginx master and workers): whose CPU time counts. */
export function processFamily(pid: number): number[] {
  try {
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    return [pid, ...kids];
  } catch {
    return [pid];
  }
}

export interface NginxOptions {
  /** Main-context directives placed first (`load_module ...;`). */
  main?: string;
  workerConnections?: number;
  /** Open-file limit for nginx (and `worker_rlimit_nofile`). */
  nofile?: number;
  /** A `stream` block's body, given the port (then `body` should bind nothing: `() => ''`). */
  stream?: (port: number) => string;
}

/** The nginx stream module's file, when the package that ships it is installed (libnginx-mod-stream). */
export const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

/**
 * Starts nginx (1 worker, no access log, keep-alive without limit) with `body(port)` inside its
 * `http` block, its files in `dir`; resolves once it listens.
 */
export async function startNginx(dir: string, name: string, body: (port: number) => string, httpExtra = '', opts: NginxOptions = {}): Promise<{ port: number; child: ChildProcess }> {
  const { writeFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const port = await freePort();
  const conf = join(dir, `${name}.conf`);
  writeFileSync(conf, `${opts.main ?? ''} worker_processes 1; daemon off; master_process on; pid ${join(dir, `${name}.pid`)}; error_log ${join(dir, `${name}.err`)} warn;
${opts.nofile ? `worker_rlimit_nofile ${opts.nofile};` : ''}
events { worker_connections ${opts.workerConnections ?? 4096}; }
http { access_log off; keepalive_requests 10000000; ${httpExtra}
  client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
${body(port)} }
${opts.stream ? `stream { ${opts.stream(port)} }` : ''}`);
  const child = spawn(...withFileLimit(opts.nofile, 'nginx', ['-c', conf]), { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitForPort(port);
  return { port, child };
}

/**
 * The HTTP/2 proxy of the h2 scripts (h2-profile, allocations, h2-series): an nginx upstream
 * (`return 200` over h2c) and Shuttle in front of it (1 thread, h2c both sides, one upstream
 * connection). `stop()` ends both.
 */
export async function startH2Proxy(dir: string): Promise<{ port: number; shuttle: ChildProcess; stop: () => Promise<void> }> {
  const upstream = await startNginx(dir, 'upstream', (p) => `server { listen 127.0.0.1:${p} http2; location / { return 200 "hello from the upstream\\n"; } }`);
  const port = await freePort();
  const shuttle = await startShuttle({
    listeners: [{ name: 'h2', address: `127.0.0.1:${port}`, protocol: 'http', access_log: false, http: { codec: 'http2' }, virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ cluster: 'up' }] }] }],
    clusters: [{ name: 'up', protocol: 'http2', hosts: [`127.0.0.1:${upstream.port}`], http2: { max_connections: 1, max_concurrent_streams: 1000 } }],
  }, 1);
  return {
    port,
    shuttle,
    stop: async () => {
      await stop(shuttle);
      upstream.child.kill('SIGTERM');
    },
  };
}
