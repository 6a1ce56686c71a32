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

/** Every property name the schema has, at any depth ($ref, items, unions, maps followed). */
function fieldNames(schema: Record<string, unknown>): Set<string> {
  const names = new Set<string>();
  const seen = new Set<unknown>();
  const walk = (n: unknown): void => {
    if (!n || typeof n !== 'object' || seen.has(n)) return;
    seen.add(n);
    const node = n as Record<string, unknown>;
    if (typeof node.$ref === 'string' && node.$ref.startsWith('#/')) walk(node.$ref.slice(2).split('/').reduce<unknown>((x, k) => (x as Record<string, unknown>)[k], schema));
    for (const [k, v] of Object.entries((node.properties ?? {}) as Record<string, unknown>)) {
      names.add(k);
      walk(v);
    }
    for (const key of ['items', 'additionalProperties']) walk(node[key]);
    for (const key of ['anyOf', 'oneOf', 'allOf']) for (const x of (node[key] as unknown[] | undefined) ?? []) walk(x);
    for (const key of ['$defs', 'definitions']) for (const x of Object.values((node[key] ?? {}) as Record<string, unknown>)) walk(x);
  };
  walk(schema);
  return names;
}

describe('config JSON Schema', () => {
  it('every config field is documented (docs/configuration.md, or docs/filters.md for filter configs)', () => {
    const docs = ['configuration.md', 'filters.md'].map((f) => readFileSync(join(ROOT, 'docs', f), 'utf8')).join('\n');
    const undocumented = [...fieldNames(JSON.parse(committed))].filter((k) => !k.startsWith('$') && !new RegExp(`\\b${k}\\b`).test(docs));
    expect(undocumented).toEqual([]);
  });

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
