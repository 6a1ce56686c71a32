import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../src/config/load.ts';
import { runCli, writeTempConfig } from './support/shuttle.ts';

const EXAMPLES = fileURLToPath(new URL('../examples/', import.meta.url));

function problems(text: string, file = 'c.yaml'): string[] {
  try {
    parseConfig(text, file);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => `${p.path}: ${p.message}`);
    throw err;
  }
  return [];
}

const MINIMAL = `
version: 1
listeners: [{ name: l, address: "127.0.0.1:7000", cluster: c }]
clusters: [{ name: c, hosts: ["127.0.0.1:8000"] }]
`;

describe('config', () => {
  it.each(readdirSync(EXAMPLES).filter((f) => /\.(ya?ml|json)$/.test(f)))('example %s validates with `shuttle validate`', async (file) => {
    const { code, stdout, stderr } = await runCli(['validate', '-c', join(EXAMPLES, file)]);
    expect(stderr).toBe('');
    expect(stdout).toContain('valid');
    expect(code).toBe(0);
  });

  it('applies safe defaults and normalises durations to milliseconds', () => {
    const c = parseConfig(MINIMAL);
    expect(c.admin.address).toEqual({ host: '127.0.0.1', port: 9901 });
    expect(c.drain_timeout).toBe(30_000);
    expect(c.listeners[0]).toMatchObject({ protocol: 'tcp', idle_timeout: 3_600_000, max_connect_attempts: 3 });
    expect(c.clusters[0]).toMatchObject({ lb_policy: 'round_robin', connect_timeout: 5000, hosts: [{ host: '127.0.0.1', port: 8000, weight: 1 }] });
    const d = parseConfig(MINIMAL.replace('cluster: c }', 'cluster: c, idle_timeout: 1.5s }'));
    expect(d.listeners[0].idle_timeout).toBe(1500);
  });

  it('refuses a duration without a unit, naming the path and asking for one', () => {
    expect(problems(MINIMAL.replace('cluster: c }', 'cluster: c, idle_timeout: 2 }'))).toEqual(['listeners[0].idle_timeout: a duration needs a unit: write 2s or 2ms']);
    expect(problems(MINIMAL.replace('cluster: c }', 'cluster: c, idle_timeout: "2" }'))).toEqual(['listeners[0].idle_timeout: a duration needs a unit: write 2s or 2ms']);
    expect(problems(MINIMAL.replace('cluster: c }', 'cluster: c, idle_timeout: 2 weeks }'))).toEqual(['listeners[0].idle_timeout: expected a duration such as 250ms, 5s, 1m or 1h']);
    expect(problems('drain_timeout: 0\n' + MINIMAL)).toEqual([]);
  });

  it('returns a deeply frozen snapshot', () => {
    const c = parseConfig(MINIMAL);
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.clusters[0].hosts[0])).toBe(true);
    expect(() => {
      (c.clusters[0] as { name: string }).name = 'x';
    }).toThrow(TypeError);
  });

  it('accepts IPv6 hosts and JSON', () => {
    const c = parseConfig(JSON.stringify({ version: 1, listeners: [{ name: 'l', address: '[::1]:7000', cluster: 'c' }], clusters: [{ name: 'c', hosts: [{ address: '[::1]:8000', weight: 3 }] }] }), 'c.json');
    expect(c.listeners[0].address).toEqual({ host: '::1', port: 7000 });
    expect(c.clusters[0].hosts[0]).toEqual({ host: '::1', port: 8000, weight: 3 });
  });

  it('reports every problem with its path, cross-references included', () => {
    const found = problems(`
version: 1
listeners:
  - { name: a, address: "127.0.0.1:7000", cluster: nope }
  - { name: a, address: "127.0.0.1:7000", cluster: c, idle_timeout: soon }
clusters:
  - { name: c, hosts: ["127.0.0.1:80"] }
  - { name: d, lb_policy: fastest, hosts: ["127.0.0.1:80", "localhost", { address: "1.2.3.4:99999", weight: 0 }] }
`);
    expect(found).toEqual(expect.arrayContaining([
      expect.stringMatching(/^listeners\[0\]\.cluster: unknown cluster "nope"/),
      expect.stringMatching(/^listeners\[1\]\.name: duplicate listener name "a"/),
      expect.stringMatching(/^listeners\[1\]\.address: .*used by another listener/),
      expect.stringMatching(/^listeners\[1\]\.idle_timeout: expected a duration/),
      expect.stringMatching(/^clusters\[1\]\.lb_policy: /),
      expect.stringMatching(/^clusters\[1\]\.hosts\[1\]: expected host:port$/),
      expect.stringMatching(/^clusters\[1\]\.hosts\[2\]\.address: expected host:port$/),
      expect.stringMatching(/^clusters\[1\]\.hosts\[2\]\.weight: /),
    ]));
    expect(found).toHaveLength(8);
  });

  it('names empty lists and unknown fields', () => {
    expect(problems('version: 1\nlisteners: []\nclusters: []\nlisteners_typo: 1\n')).toEqual([
      'listeners: at least one listener is required',
      'clusters: at least one cluster is required',
      'listeners_typo: unknown field',
    ]);
  });

  it('gives every problem its line and column in the file, schema and cross-reference problems alike', () => {
    const text = `version: 1
listeners:
  - name: in
    address: "127.0.0.1:7000"
    cluster: missing
    idle_timeout: 2
    colour: blue
clusters:
  - { name: c, hosts: ["127.0.0.1:80", "nope"] }
`;
    let error: ConfigError | undefined;
    try {
      parseConfig(text, 'c.yaml');
    } catch (err) {
      error = err as ConfigError;
    }
    expect(error?.problems.map((p) => `${p.line}:${p.column} ${p.path}: ${p.message}`).sort()).toEqual([
      '5:5 listeners[0].cluster: unknown cluster "missing"',
      '6:5 listeners[0].idle_timeout: a duration needs a unit: write 2s or 2ms',
      '7:5 listeners[0].colour: unknown field',
      '9:40 clusters[0].hosts[1]: expected host:port',
    ].sort());
    expect(error?.message).toContain('c.yaml:6:5: listeners[0].idle_timeout: a duration needs a unit: write 2s or 2ms');
    // A missing required field is placed where its parent starts; JSON is located too.
    const json = '{\n  "version": 1,\n  "listeners": [\n    { "address": "127.0.0.1:1", "cluster": "c" }\n  ],\n  "clusters": [{ "name": "c", "hosts": ["127.0.0.1:2"] }]\n}\n';
    try {
      parseConfig(json, 'c.json');
    } catch (err) {
      error = err as ConfigError;
    }
    expect(error?.problems.map((p) => `${p.line}:${p.column} ${p.path}: ${p.message}`)).toEqual(['4:5 listeners[0].name: required (string)']);
  });

  it('places YAML syntax errors too', () => {
    let error: ConfigError | undefined;
    try {
      parseConfig('version: 1\nlisteners:\n  - name: a\n   bad indent: [\n', 'c.yaml');
    } catch (err) {
      error = err as ConfigError;
    }
    expect(error?.problems[0]).toMatchObject({ path: '', line: expect.any(Number), message: expect.stringMatching(/^cannot parse: /) });
    expect(error?.message).toMatch(/^invalid config c\.yaml \(\d+ problems?\):\nc\.yaml:\d+:\d+: cannot parse: /);
  });

  it('`shuttle validate` on a bad config exits non-zero naming each bad path', async () => {
    const file = writeTempConfig(`
version: 1
listeners:
  - { name: in, address: "nope", cluster: missing }
clusters:
  - { name: c, connect_timeout: -1, hosts: ["127.0.0.1:http"] }
`, 'yaml');
    const { code, stderr } = await runCli(['validate', '-c', file]);
    expect(code).toBe(1);
    expect(stderr).toContain('listeners[0].address: expected host:port');
    expect(stderr).toContain('listeners[0].cluster: unknown cluster "missing"');
    expect(stderr).toContain('clusters[0].connect_timeout:');
    expect(stderr).toContain('clusters[0].hosts[0]: expected host:port');
  });

  it('`shuttle validate` reports unparseable YAML and a missing file', async () => {
    const bad = writeTempConfig('version: 1\nlisteners: [\n', 'yaml');
    const r1 = await runCli(['validate', '-c', bad]);
    expect(r1.code).toBe(1);
    expect(r1.stderr).toMatch(/cannot parse/);
    const r2 = await runCli(['validate', '-c', '/nonexistent/shuttle.yaml']);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/cannot read/);
  });
});
