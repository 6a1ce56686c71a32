/**
 * Reads, parses and validates a config file into a frozen snapshot. Every problem is reported
 * with its path (`clusters[1].hosts[0]: expected host:port`); nothing half-valid is returned.
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import YAML from 'yaml';
import type { z } from 'zod';
import { configSchema, crossReferenceProblems, type ShuttleConfig } from './schema.ts';
import { ShuttleError } from '../errors.ts';
import { loadSecrets, type Secrets } from './secrets.ts';

export interface ConfigProblem {
  readonly path: string;
  readonly message: string;
}

export class ConfigError extends ShuttleError {
  readonly problems: readonly ConfigProblem[];
  constructor(file: string, problems: ConfigProblem[]) {
    super('SHUTTLE_E_CONFIG', 'internal', `invalid config ${file}:\n${problems.map(formatProblem).join('\n')}`);
    this.problems = problems;
  }
}

export function formatProblem(p: ConfigProblem): string {
  return p.path ? `  ${p.path}: ${p.message}` : `  ${p.message}`;
}

/** ["clusters", 1, "hosts", 0] → "clusters[1].hosts[0]" */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out ? `.${String(key)}` : String(key);
  }
  return out;
}

function problemsOf(error: z.ZodError): ConfigProblem[] {
  return error.issues.map((issue) => {
    let message = issue.message;
    if (issue.code === 'unrecognized_keys') message = `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    if (issue.code === 'invalid_type' && /received undefined/.test(message)) message = `required (${issue.expected})`;
    return { path: formatPath(issue.path), message };
  });
}

/** Parses text (YAML, or JSON for .json files) and validates it. Throws ConfigError. */
export function parseConfig(text: string, file = '<config>'): ShuttleConfig {
  let raw: unknown;
  try {
    raw = extname(file) === '.json' ? JSON.parse(text) : YAML.parse(text, { prettyErrors: true });
  } catch (err) {
    throw new ConfigError(file, [{ path: '', message: `cannot parse: ${(err as Error).message}` }]);
  }
  const result = configSchema.safeParse(raw ?? {});
  const problems = result.success ? [] : problemsOf(result.error);
  for (const p of crossReferenceProblems(raw)) problems.push({ path: formatPath(p.path), message: p.message });
  if (!result.success || problems.length > 0) throw new ConfigError(file, problems);
  return deepFreeze(result.data);
}

/** A valid config and the TLS files it names (read and checked, see secrets.ts). */
export interface LoadedConfig {
  config: ShuttleConfig;
  secrets: Secrets;
}

export async function loadConfigFile(file: string): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [{ path: '', message: `cannot read: ${(err as Error).message}` }]);
  }
  const config = parseConfig(text, file);
  const { secrets, problems } = await loadSecrets(config, file);
  if (problems.length > 0) throw new ConfigError(file, problems);
  return { config, secrets };
}

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
