/**
 * Reading where a proxy's time goes, shared by the *-profile.ts scripts: V8 CPU profiles written by
 * Shuttle's workers (SHUTTLE_CPU_PROFILE_DIR), and `perf record` of a whole process.
 *
 * Why both: V8's sampler attributes a sample taken during a system call to the JavaScript frame
 * that made it, and on this 2-core machine its samples land mostly there (`writeBuffer` 50–70%), so
 * it ranks JavaScript functions well but hides what native code and the kernel cost. `perf` (with
 * `--perf-basic-prof` naming JIT frames) splits every sample into kernel, V8, Node/libuv and
 * JavaScript.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode { callFrame: { functionName: string; url: string; lineNumber: number }; hitCount: number }

/** Prints the top functions by self time of every .cpuprofile in `dir` (and by file when `byFile`). */
export function printCpuProfiles(dir: string, top = 40, byFile = false): void {
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const p = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { nodes: ProfileNode[] };
    const self = new Map<string, number>();
    let total = 0;
    for (const n of p.nodes) {
      const url = n.callFrame.url.replace(/^.*\/(src|node_modules)\//, '$1/');
      const key = `${n.callFrame.functionName || '(anon)'} ${url}:${n.callFrame.lineNumber + 1}`;
      self.set(key, (self.get(key) ?? 0) + n.hitCount);
      total += n.hitCount;
    }
    const pct = (v: number) => ((100 * v) / total).toFixed(1).padStart(5);
    console.log(`\n${f}: top self time`);
    for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(v)}%  ${k}`);
    if (!byFile) continue;
    const files = new Map<string, number>();
    for (const [k, v] of self) {
      const file = k.split(' ')[1].replace(/:\d+$/, '') || '(native)';
      files.set(file, (files.get(file) ?? 0) + v);
    }
    console.log('\nby file:');
    for (const [k, v] of [...files].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(`${pct(v)}%  ${k}`);
  }
}

interface HeapNode { callFrame: { functionName: string; url: string; lineNumber: number }; selfSize: number; children: HeapNode[] }

/** Prints bytes allocated per `unit` (request, call) by function, from every .heapprofile in `dir`. */
export function printHeapProfiles(dir: string, units: number, unit: string, top = 30): void {
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.heapprofile'))) {
    const root = (JSON.parse(readFileSync(join(dir, f), 'utf8')) as { head: HeapNode }).head;
    const self = new Map<string, number>();
    let total = 0;
    const walk = (n: HeapNode) => {
      const url = n.callFrame.url.replace(/^.*\/(src|node_modules)\//, '$1/');
      const key = `${n.callFrame.functionName || '(anon)'} ${url}:${n.callFrame.lineNumber + 1}`;
      self.set(key, (self.get(key) ?? 0) + n.selfSize);
      total += n.selfSize;
      for (const c of n.children) walk(c);
    };
    walk(root);
    console.log(`${f}: ${(total / units).toFixed(0)} bytes allocated per ${unit} (sampled)`);
    for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${(v / units).toFixed(1).padStart(8)} B/${unit}  ${k}`);
  }
}

/** Node flag that names JIT frames for perf: set it in NODE_OPTIONS before starting the process. */
export const PERF_NODE_OPTION = '--perf-basic-prof';

/**
 * Starts `perf record` (cpu-clock, every thread) on `pid`; the returned function stops it and
 * prints the share of samples by thread and kind (kernel, V8, native, Node's JS, Shuttle's JS)
 * and the `top` symbols. PERF_GRAPH=1 records call graphs too and first prints inclusive time per
 * JavaScript function.
 */
export async function startPerf(pid: number, dir: string, top = 60): Promise<() => Promise<void>> {
  const data = join(dir, 'perf.data');
  const graph = process.env.PERF_GRAPH === '1';
  const perf = spawn('perf', ['record', '-q', '-e', 'cpu-clock', '-F', '4000', ...(graph ? ['-g'] : []), '-o', data, '-p', String(pid)], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 1000));
  return async () => {
    perf.kill('SIGINT');
    await new Promise((r) => perf.once('close', r));
    if (graph) {
      // Inclusive time (self and callees) per JavaScript function: which of Shuttle's steps, with
      // the builtins and native calls it makes, costs what.
      const inclusive = execFileSync('perf', ['report', '-i', data, '--children', '--sort', 'sym', '--stdio', '-g', 'none', '--percent-limit', '0.8'], { encoding: 'utf8', maxBuffer: 256 << 20 });
      console.log('inclusive time by function (PERF_GRAPH=1):');
      for (const l of inclusive.split('\n')) if (/^\s*[\d.]+%\s+[\d.]+%/.test(l) && l.includes('JS:')) console.log(l.replace(/file:\/\/\/.*?\/src\//, 'src/'));
    }
    const report = execFileSync('perf', ['report', '-i', data, '--no-children', '--sort', 'comm,sym', '--stdio'], { encoding: 'utf8', maxBuffer: 256 << 20 });
    const rows = report.split('\n').map((l) => /^\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)$/.exec(l)).filter((m) => m !== null);
    const groups = new Map<string, number>();
    for (const [, pct, comm, kind, sym] of rows) {
      const group = kind === 'k' ? 'kernel' : sym.includes('/src/') ? 'Shuttle JS' : sym.startsWith('JS:') ? 'Node JS' : /^Builtins_|v8::/.test(sym) ? 'V8' : 'native (node, libuv, libc)';
      const key = `${comm.padEnd(16)} ${group}`;
      groups.set(key, (groups.get(key) ?? 0) + Number(pct));
    }
    console.log('share of samples by thread and kind:');
    for (const [k, v] of [...groups].sort((a, b) => b[1] - a[1])) if (v >= 0.5) console.log(`${v.toFixed(1).padStart(6)}%  ${k}`);
    if (top > 0) console.log('top symbols:');
    for (const [, pct, comm, kind, sym] of rows.slice(0, top)) console.log(`${pct.padStart(6)}%  ${comm.padEnd(16)} [${kind}] ${sym.replace(/file:\/\/\/.*?\/src\//, 'src/')}`);
  };
}

/**
 * Starts `strace -c -f` on `pid` (every thread); the returned function stops it and prints the
 * system calls per request for `requests` requests (calls rarer than one per 100 requests left out).
 */
export async function startSyscallCount(pid: number): Promise<(requests: number) => Promise<void>> {
  const strace = spawn('strace', ['-c', '-f', '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let counts = '';
  strace.stderr!.on('data', (d) => (counts += d));
  await new Promise((r) => setTimeout(r, 1000));
  return async (requests) => {
    strace.kill('SIGINT');
    await new Promise((r) => strace.once('close', r));
    console.log(`system calls per request (${requests} requests):`);
    for (const line of counts.split('\n')) {
      const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$/.exec(line);
      if (m && Number(m[1]) > requests / 100) console.log(`  ${m[2].padEnd(16)} ${(Number(m[1]) / requests).toFixed(3)}`);
    }
  };
}

