/**
 * Regular expressions from the config (routes, header and query matchers, RPC services, filters)
 * run on RE2 (re2js, a pure-JavaScript port): matching takes time linear in the input, whatever
 * the pattern, so a request cannot stall a worker by backtracking (`/search/(a+)+b` against
 * `/search/aaaa…a` takes V8's own engine seconds; RE2 under a microsecond). The syntax is RE2's,
 * as in Envoy's safe_regex: no backreferences, no lookaround; `(?i)` flags, `\pL`, `[[:alpha:]]`.
 *
 * A pattern always matches the whole value (Envoy's full-match semantics), never a part of it.
 *
 * Why re2js (measured in docs/configuration.md#regular-expressions): the native `re2` package
 * needs a compiler or a prebuilt binary fetched at install time (neither works in a production
 * install here); V8's linear engine needs a process-wide experimental flag, keeps JavaScript's
 * syntax and refuses bounded repeats such as `{2,1000}`; re2-wasm never frees a compiled
 * pattern. re2js matched typical route patterns in 0.3 µs and compiled one in ~30 µs.
 */
import { RE2JS, RE2JSException } from 're2js';
import { ShuttleError } from '../errors.ts';

/**
 * Largest compiled program accepted (RE2 instructions), as Envoy caps RE2's program size: a
 * bigger program costs more per character matched. `[a-z0-9-]{1,63}` is 127; `[a-z]{1,1000}`
 * (2001) is refused.
 */
export const MAX_REGEX_PROGRAM_SIZE = 1000;

export interface SafeRegex {
  readonly pattern: string;
  /** True when the pattern matches the whole of `value`. */
  matches(value: string): boolean;
}

/** Why `pattern` cannot be used, or undefined when it can (config validation). */
export function regexProblem(pattern: string): string | undefined {
  try {
    compile(pattern);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Compiles a validated pattern; throws ShuttleError SHUTTLE_E_CONFIG with the reason otherwise. */
export function compileSafeRegex(pattern: string): SafeRegex {
  const re = compile(pattern);
  return { pattern, matches: (value) => re.testExact(value) };
}

function compile(pattern: string): RE2JS {
  let re: RE2JS;
  try {
    re = RE2JS.compile(pattern);
  } catch (err) {
    if (!(err instanceof RE2JSException)) throw err;
    const reason = err.message.replace(/^error parsing regexp: /, '');
    throw new ShuttleError('SHUTTLE_E_CONFIG', 'internal', `not a valid RE2 regular expression: ${reason}${hint(reason)}`);
  }
  const size = re.programSize();
  if (size > MAX_REGEX_PROGRAM_SIZE) {
    throw new ShuttleError('SHUTTLE_E_CONFIG', 'internal', `the regular expression compiles to ${size} RE2 instructions, more than the limit of ${MAX_REGEX_PROGRAM_SIZE}: simplify it (large counted repeats such as {1,500} cost the most)`);
  }
  return re;
}

/** What a JavaScript or PCRE habit should become in RE2. */
function hint(reason: string): string {
  if (/Perl syntax: `\(\?[=!]/.test(reason) || /named capture: `\(\?<[=!]/.test(reason)) return ' (RE2 has no lookahead or lookbehind)';
  if (/invalid escape sequence: `\\[1-9]/.test(reason)) return ' (RE2 has no backreferences)';
  if (/invalid repeat count/.test(reason)) return ' (a counted repeat goes up to {1000})';
  return '';
}
