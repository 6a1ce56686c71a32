/**
 * Reads, parses and validates a config file into a frozen snapshot. Every problem is reported
 * with its place (`shuttle.yaml:12:9: clusters[1].hosts[0]: expected host:port`); nothing
 * half-valid is returned.
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import YAML, { type YAMLError } from 'yaml';
import type { z } from 'zod';
import { configSchema, crossReferenceProblems, type ShuttleConfig } from './schema.ts';
import { ShuttleError } from '../errors.ts';
import { loadSecrets, type Secrets } from './secrets.ts';
import { locator } from './locate.ts';
import { accessLogProblems } from '../log/access-log.ts';

export interface ConfigProblem {
  readonly path: string;
  readonly message: string;
  /** Where in the file (1-based), when the path leads somewhere in it. */
  readonly line?: number;
  readonly column?: number;
}

export class ConfigError extends ShuttleError {
  readonly problems: readonly ConfigProblem[];
  constructor(file: string, problems: ConfigProblem[]) {
    const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
    super('SHUTTLE_E_CONFIG', 'internal', `invalid config ${file} (${count}):\n${problems.map((p) => formatProblem(p, file)).join('\n')}`);
    this.problems = problems;
  }
}

/**
 * One style for every config problem, at start, validate and reload, as compilers print them:
 * `file:line:column: path: message` (editors and CI annotations jump to it).
 */
export function formatProblem(p: ConfigProblem, file: string): string {
  const where = p.line !== undefined ? `${file}:${p.line}:${p.column ?? 1}` : file;
  return p.path ? `${where}: ${p.path}: ${p.message}` : `${where}: ${p.message}`;
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

type Issue = z.core.$ZodIssue;

function problemsOfIssue(issue: Issue, base: readonly PropertyKey[]): ConfigProblem[] {
  const path = [...base, ...issue.path];
  // Each unknown field at its own path, so that it can be located in the file.
  if (issue.code === 'unrecognized_keys') return issue.keys.map((k) => ({ path: formatPath([...path, k]), message: 'unknown field' }));
  if (issue.code === 'invalid_union') {
    // `false | { path, fields }`: an object whose field is wrong is reported at that field, not
    // as "invalid input" for the whole union (the branch whose shape matched goes deepest).
    const depth = (branch: readonly Issue[]) => Math.max(...branch.map((i) => i.path.length));
    const best = [...issue.errors].sort((a, b) => depth(b) - depth(a))[0];
    if (best && depth(best) > 0) return best.flatMap((i) => problemsOfIssue(i, path));
  }
  let message = issue.message;
  if (issue.code === 'invalid_type' && /received undefined/.test(message)) message = `required (${issue.expected})`;
  return [{ path: formatPath(path), message }];
}

function problemsOf(error: z.ZodError): ConfigProblem[] {
  return error.issues.flatMap((issue) => problemsOfIssue(issue, []));
}

/** Adds the line and column of each problem's path in `text`, and puts them in file order. */
export function locateProblems(text: string, problems: readonly ConfigProblem[]): ConfigProblem[] {
  if (problems.length === 0) return [];
  const where = locator(text);
  const located = problems.map((p) => (p.line !== undefined ? p : { ...p, ...where(p.path) }));
  return located.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
}

/** The YAML parser's own errors, each with its position. */
function yamlErrors(errors: readonly YAMLError[]): ConfigProblem[] {
  return errors.slice(0, 10).map((e) => {
    const pos = e.linePos?.[0];
    return { path: '', message: `cannot parse: ${e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')}`, ...(pos ? { line: pos.line, column: pos.col } : {}) };
  });
}

/** Parses text (YAML, or JSON for .json files) and validates it. Throws ConfigError. */
export function parseConfig(text: string, file = '<config>'): ShuttleConfig {
  let raw: unknown;
  if (extname(file) === '.json') {
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new ConfigError(file, [{ path: '', message: `cannot parse: ${(err as Error).message}` }]);
    }
  } else {
    const doc = YAML.parseDocument(text, { prettyErrors: true });
    if (doc.errors.length > 0) throw new ConfigError(file, yamlErrors(doc.errors));
    raw = doc.toJS();
  }
  const result = configSchema.safeParse(raw ?? {});
  const problems = result.success ? [] : problemsOf(result.error);
  for (const p of crossReferenceProblems(raw)) problems.push({ path: formatPath(p.path), message: p.message });
  if (!result.success || problems.length > 0) throw new ConfigError(file, locateProblems(text, problems));
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
  const [{ secrets, problems }, logProblems] = await Promise.all([loadSecrets(config, file), accessLogProblems(config, file)]);
  problems.push(...logProblems);
  if (problems.length > 0) throw new ConfigError(file, locateProblems(text, problems));
  return { config, secrets };
}

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
