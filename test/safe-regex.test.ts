import { describe, expect, it } from 'vitest';
import { parseConfig, ConfigError } from '../src/config/load.ts';
import { compileSafeRegex, MAX_REGEX_PROGRAM_SIZE, regexProblem } from '../src/regex/safe-regex.ts';

function problemsOf(route: Record<string, unknown>): string[] {
  const config = {
    version: 1,
    listeners: [{ name: 'web', address: '127.0.0.1:0', protocol: 'http', virtual_hosts: [{ name: 'all', domains: ['*'], routes: [{ ...route, direct_response: { status: 200 } }] }] }],
    clusters: [{ name: 'c', hosts: ['127.0.0.1:1'] }],
  };
  try {
    parseConfig(JSON.stringify(config), 'c.json');
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map((p) => `${p.path}: ${p.message}`);
    throw err;
  }
}

describe('safe regex (RE2)', () => {
  it('matches the whole value, in RE2 syntax', () => {
    const re = compileSafeRegex('/api/v[0-9]+/users/[^/]+');
    expect(re.matches('/api/v2/users/42')).toBe(true);
    expect(re.matches('/api/v2/users/42/orders')).toBe(false);
    expect(re.matches('x/api/v2/users/42')).toBe(false);
    expect(compileSafeRegex('(?i)/admin/.*').matches('/ADMIN/x')).toBe(true);
    expect(compileSafeRegex('\\pL+').matches('héllo')).toBe(true);
    expect(compileSafeRegex('[[:digit:]]{3}').matches('123')).toBe(true);
    expect(compileSafeRegex('a|b').matches('ab')).toBe(false); // the alternation is anchored as a whole
  });

  it('runs a catastrophic-backtracking pattern in linear time', () => {
    const re = compileSafeRegex('/search/(a+)+b');
    const started = performance.now();
    for (let n = 20; n <= 4096; n *= 2) expect(re.matches(`/search/${'a'.repeat(n)}`)).toBe(false);
    // V8's backtracking engine needs seconds for 28 a's; bound generous for a busy machine.
    expect(performance.now() - started).toBeLessThan(500);
    expect(re.matches('/search/aaab')).toBe(true);
  });

  it('refuses what RE2 cannot run, saying why', () => {
    expect(regexProblem('(?=a)b')).toMatch(/^not a valid RE2 regular expression: .*\(RE2 has no lookahead or lookbehind\)$/);
    expect(regexProblem('(?<=a)b')).toMatch(/RE2 has no lookahead or lookbehind/);
    expect(regexProblem('(a)\\1')).toMatch(/RE2 has no backreferences/);
    expect(regexProblem('a{1001}')).toMatch(/counted repeat goes up to \{1000\}/);
    expect(regexProblem('(unclosed')).toMatch(/missing closing \)/);
    expect(regexProblem('[a-z0-9-]{1,63}')).toBeUndefined();
  });

  it(`caps the compiled program at ${MAX_REGEX_PROGRAM_SIZE} instructions`, () => {
    expect(regexProblem('[a-z]{1,400}')).toBeUndefined();
    expect(regexProblem('[a-z]{1,1000}')).toMatch(/compiles to 2001 RE2 instructions, more than the limit of 1000/);
  });

  it('validation names the path of every bad pattern in the config', () => {
    expect(problemsOf({ match: { regex: '/x(?!y)' } })).toEqual([expect.stringMatching(/^listeners\[0\]\.virtual_hosts\[0\]\.routes\[0\]\.match\.regex: not a valid RE2 regular expression/)]);
    expect(problemsOf({ match: { prefix: '/', headers: [{ name: 'x-id', regex: '(\\d)\\1' }] } })).toEqual([expect.stringMatching(/^listeners\[0\]\.virtual_hosts\[0\]\.routes\[0\]\.match\.headers\[0\]\.regex: .*backreferences/)]);
    expect(problemsOf({ match: { prefix: '/', query_params: [{ name: 'q', regex: '[a-z]{1,999}' }] } })).toEqual([expect.stringMatching(/^listeners\[0\]\.virtual_hosts\[0\]\.routes\[0\]\.match\.query_params\[0\]\.regex: the regular expression compiles to \d+ RE2 instructions/)]);
    expect(problemsOf({ match: { regex: '/search/(a+)+b' } })).toEqual([]);
  });
});
