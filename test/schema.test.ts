/**
 * `shuttle schema`: the config's JSON Schema, committed as schema/shuttle.schema.json for editors.
 * The committed file must be what the code generates, every example must pass it (checked by an
 * independent validator, ajv) and carry the editor modeline, and it must catch what the loader
 * refuses (a bare-number duration, an unknown field, a bad filter config).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import YAML from 'yaml';
import { describe, expect, it } from 'vitest';
import { runCli } from './support/shuttle.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const EXAMPLES = join(ROOT, 'examples');
const committed = readFileSync(join(ROOT, 'schema/shuttle.schema.json'), 'utf8');
const validate = new Ajv({ strict: false, allErrors: true }).compile(JSON.parse(committed));

const examples = readdirSync(EXAMPLES).filter((f) => /\.(ya?ml|json)$/.test(f));
const load = (file: string) => {
  const text = readFileSync(join(EXAMPLES, file), 'utf8');
  return { text, value: file.endsWith('.json') ? JSON.parse(text) : YAML.parse(text) };
};

describe('config JSON Schema', () => {
  it('schema/shuttle.schema.json is what `shuttle schema` prints (run `npm run schema` after changing the config)', async () => {
    const { code, stdout, stderr } = await runCli(['schema']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toBe(committed);
  });

  it.each(examples)('example %s passes the schema and names it for editors', (file) => {
    const { text, value } = load(file);
    const ok = validate(value);
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
    if (file.endsWith('.json')) expect(value.$schema).toBe('../schema/shuttle.schema.json');
    else expect(text.split('\n')[0]).toBe('# yaml-language-server: $schema=../schema/shuttle.schema.json');
  });

  it('refuses what the loader refuses', () => {
    const base = load('shuttle.yaml').value;
    const variants: [string, (c: any) => void, RegExp][] = [
      ['a bare-number duration', (c) => (c.drain_timeout = 2), /drain_timeout/],
      ['an unknown field', (c) => (c.listeners[0].colour = 'blue'), /additional properties|colour/i],
      ['a misspelt host field', (c) => (c.clusters[0].hosts = [{ address: '127.0.0.1:1', weigth: 2 }]), /hosts/],
      ['a bad filter config', (c) => (c.listeners[1].http_filters = [{ name: 'fault', config: { delay: { fixed_delay: 5 } } }]), /http_filters/],
      ['an unknown filter', (c) => (c.listeners[1].http_filters = [{ name: 'nope' }]), /http_filters/],
    ];
    for (const [what, change, where] of variants) {
      const c = structuredClone(base);
      change(c);
      expect(validate(c), what).toBe(false);
      expect(JSON.stringify(validate.errors), what).toMatch(where);
    }
    // And durations with units, or 0, pass.
    const good = structuredClone(base);
    good.drain_timeout = '1.5s';
    good.upgrade_timeout = 0;
    expect(validate(good)).toBe(true);
  });
});
