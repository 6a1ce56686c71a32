import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runCli } from './support/shuttle.ts';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

/** A Node older than 26.10 on this machine (the system one), if there is one. */
function olderNode(): string | undefined {
  for (const candidate of ['/usr/bin/node', '/usr/local/bin/node', '/bin/node']) {
    try {
      const v = execFileSync(candidate, ['-p', 'process.versions.node'], { encoding: 'utf8' }).trim().split('.').map(Number);
      if (v[0] < 26 || (v[0] === 26 && v[1] < 10)) return candidate;
    } catch {
      // not there
    }
  }
  return undefined;
}

describe('shuttle CLI', () => {
  it('prints its version', async () => {
    const { code, stdout } = await runCli(['--version']);
    expect(code).toBe(0);
    expect(stdout.trim()).toBe(pkg.version);
  });

  it('lists its commands and options in --help', async () => {
    const { stdout } = await runCli(['start', '--help']);
    for (const opt of ['--config', '--threads', '--balance', '--log-level', '--log-format', '--pid-file', '--supervise']) expect(stdout).toContain(opt);
  });

  it('rejects a bad --threads and --balance', async () => {
    const a = await runCli(['start', '-c', 'x.yaml', '--threads', '0']);
    expect(a.code).not.toBe(0);
    expect(a.stderr).toMatch(/--threads/);
    const b = await runCli(['start', '-c', 'x.yaml', '--balance', 'magic']);
    expect(b.code).not.toBe(0);
    expect(b.stderr).toMatch(/handoff, reuseport/);
  });

  const old = olderNode();
  it.skipIf(!old)(`refuses an older Node with a message naming the required version (${old ?? 'no older node here'})`, async () => {
    const { code, stderr } = await runCli(['--version'], { node: old });
    expect(code).toBe(1);
    expect(stderr).toMatch(/Node\.js >= 26\.10\.0 is required, but this is v\d+/);
  });
});
