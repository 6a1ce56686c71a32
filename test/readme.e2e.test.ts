/**
 * The README's main command, as a user runs it: `npm start` serves the example config out of the
 * box (it proxies to Shuttle's own admin API). Regression: the root package's own `shuttle` bin is
 * not linked by npm, so the start script once failed with "shuttle: not found".
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

describe('README commands', () => {
  it('`npm start` runs the example config and answers on its listeners', async () => {
    const cwd = fileURLToPath(new URL('..', import.meta.url));
    const npm = spawn('npm', ['start'], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let pid = 0;
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`not ready in 20s: ${out.slice(-1000)}`)), 20_000);
        npm.stdout!.on('data', (d) => {
          out += d;
          const ready = out.split('\n').find((l) => l.includes('"shuttle ready"'));
          if (ready) {
            pid = JSON.parse(ready).pid;
            clearTimeout(timer);
            resolve();
          }
        });
        npm.stderr!.on('data', (d) => (out += d));
        npm.once('exit', (code) => reject(new Error(`npm start exited (${code}): ${out.slice(-1000)}`)));
      });
      expect(await (await fetch('http://127.0.0.1:10090/')).text()).toContain('Hello from Shuttle');
      expect((await fetch('http://127.0.0.1:10090/admin/ready')).status).toBe(200);
      expect(await (await fetch('http://127.0.0.1:10000/live')).text()).toBe('LIVE\n');
    } finally {
      if (pid) process.kill(pid, 'SIGTERM');
      await new Promise((r) => (npm.exitCode !== null ? r(undefined) : npm.once('exit', r)));
    }
  });
});
