/**
 * /config_dump: the running config in the config file's own shape, so that a dump fed back to
 * `shuttle validate` (or used as a config) means the same thing. The loaded config is normalised
 * (durations in ms, addresses parsed, filter configs parsed, defaults filled in); this walks it
 * beside the schema and writes each value as a config file would: durations with a unit ("5s"),
 * addresses as "host:port", hosts as "host:port" or { address, weight }. Defaults stay filled in,
 * so the dump shows what is in force. Secret-looking values are redacted; file paths are made
 * absolute (a dump saved elsewhere still names the same files).
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import type { z } from 'zod';
import { formatAddress, type SocketAddress } from '../config/address.ts';
import { filterEntry } from '../config/filter-schema.ts';
import { duration } from '../config/route-schema.ts';
import { configSchema, type ShuttleConfig } from '../config/schema.ts';
import { FILTER_SCHEMAS } from '../filters/schemas.ts';

/** Keys that name a secret (client_secret, api_token, private_key), not ones that merely contain the word (token_bucket). */
const SECRET_KEY = /(^|_)(secrets?|password|passphrase|token|private_?key|credentials?|api_?key)$/i;

/** A copy with the text values of secret-looking keys replaced (a flag such as allow_credentials: true is no secret). */
export function redact(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redact);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, typeof v === 'string' && SECRET_KEY.test(k) ? '[redacted]' : redact(v)]));
  }
  return value;
}

/** 90000 → "90s", 1500 → "1500ms", 3600000 → "1h". */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  for (const [unit, size] of [['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

/** zod's internal definition of a schema (stable across zod 4 releases: what its own tooling walks). */
interface Def {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  out?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  valueType?: z.ZodType;
  options?: z.ZodType[];
  getter?: () => z.ZodType;
}
const defOf = (schema: z.ZodType): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

/** Every duration (positive or not) shares this transform: how a duration field is recognised. */
const DURATION_TRANSFORM = defOf(duration).out;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isAddress = (v: unknown): v is SocketAddress => isObject(v) && typeof v.host === 'string' && typeof v.port === 'number';

function encode(schema: z.ZodType, value: unknown): unknown {
  if (value === undefined || value === null) return value;
  const def = defOf(schema);
  switch (def.type) {
    case 'optional': case 'nullable': case 'default': case 'prefault': case 'readonly': case 'catch': case 'nonoptional':
      return encode(def.innerType!, value);
    case 'lazy':
      return encode(def.getter!(), value);
    case 'pipe': {
      if (def.out === DURATION_TRANSFORM && typeof value === 'number') return formatDuration(value);
      const input = defOf(def.in!).type;
      // "host:port" parsed into { host, port }; a host entry into { host, port, weight }.
      if (input === 'string' && isAddress(value)) return formatAddress(value);
      if (input === 'unknown' && isAddress(value)) {
        const weight = (value as { weight?: number }).weight ?? 1;
        return weight === 1 ? formatAddress(value) : { address: formatAddress(value), weight };
      }
      // A refinement or normalisation that keeps the shape (listeners): walk the input's schema.
      return encode(input === 'transform' ? def.out! : def.in!, value);
    }
    case 'object': {
      if (!isObject(value)) return value;
      if (schema === (filterEntry as unknown)) return encodeFilter(value);
      const out: Record<string, unknown> = {};
      for (const [key, v] of Object.entries(value)) {
        if (key === 'per_filter_config' && isObject(v)) out[key] = encodePerFilter(v);
        else out[key] = def.shape![key] ? encode(def.shape![key], v) : v;
      }
      return out;
    }
    case 'array':
      return Array.isArray(value) ? value.map((v) => encode(def.element!, v)) : value;
    case 'record':
      return isObject(value) ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, encode(def.valueType!, v)])) : value;
    case 'union': {
      // Alternatives of strict objects (rbac rules, rate-limit descriptors): the one with these keys.
      if (!isObject(value)) return value;
      const keys = Object.keys(value);
      const option = def.options!.find((o) => {
        const d = defOf(o);
        return d.type === 'object' && keys.every((k) => k in d.shape!);
      });
      return option ? encode(option, value) : value;
    }
    default:
      return value;
  }
}

function encodeFilter(entry: Record<string, unknown>): unknown {
  const schema = FILTER_SCHEMAS[entry.name as string]?.schema;
  return { name: entry.name, ...(entry.config !== undefined ? { config: schema ? encode(schema, entry.config) : entry.config } : {}) };
}

function encodePerFilter(perFilter: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(perFilter).map(([name, v]) => {
    const schema = FILTER_SCHEMAS[name]?.schema;
    const disabled = isObject(v) && v.disabled === true && Object.keys(v).length === 1;
    return [name, disabled || !schema ? v : encode(schema, v)];
  }));
}

/** Relative TLS and access-log paths resolve against the config file's folder; JWKS files against the working directory. */
function absolutePaths(dump: Record<string, unknown>, configFile: string): void {
  const base = dirname(resolve(configFile));
  const fix = (o: Record<string, unknown> | undefined, key: string, from = base) => {
    if (o && typeof o[key] === 'string' && !isAbsolute(o[key])) o[key] = resolve(from, o[key]);
  };
  for (const l of (dump.listeners ?? []) as Record<string, any>[]) {
    for (const c of l.tls?.certificates ?? []) {
      fix(c, 'cert');
      fix(c, 'key');
    }
    fix(l.tls, 'client_ca');
    if (isObject(l.access_log)) fix(l.access_log, 'path');
    for (const f of l.http_filters ?? []) {
      if (f.name !== 'jwt_authn') continue;
      for (const p of Object.values(f.config?.providers ?? {}) as Record<string, any>[]) fix(p.local_jwks, 'filename', process.cwd());
    }
  }
  for (const c of (dump.clusters ?? []) as Record<string, any>[]) for (const key of ['ca', 'cert', 'key']) fix(c.tls, key);
}

/** The running config as a config file would say it (see the header comment). */
export function configForDump(config: ShuttleConfig, configFile: string): Record<string, unknown> {
  const dump = encode(configSchema, config) as Record<string, unknown>;
  absolutePaths(dump, configFile);
  return redact(dump) as Record<string, unknown>;
}
