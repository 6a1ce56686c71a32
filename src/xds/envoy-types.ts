/**
 * Envoy's common types as Shuttle config: string, header and regex matchers, header value options,
 * durations, fractions. Shared by the resource mappers (mapping.ts) and the HTTP filters
 * (http-filters.ts).
 */
import { Fields, XdsFieldError } from './fields.ts';

type Raw = Record<string, unknown>;

export const ms = (n: number) => `${n}ms`;

export function escapeRegex(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
}

/** type.matcher.v3.StringMatcher → Shuttle's { exact } or { regex } (prefix, suffix, contains as regexes). */
export function stringMatcher(m: Fields): Raw {
  const ignoreCase = m.bool('ignore_case') ?? false;
  const exact = m.str('exact');
  const prefix = m.str('prefix');
  const suffix = m.str('suffix');
  const contains = m.str('contains');
  const safe = m.message('safe_regex');
  m.done();
  const ci = ignoreCase ? '(?i)' : '';
  if (exact !== undefined) return ignoreCase ? { exact, ignore_case: true } : { exact };
  if (prefix !== undefined) return { regex: `${ci}(?s)${escapeRegex(prefix)}.*` };
  if (suffix !== undefined) return { regex: `${ci}(?s).*${escapeRegex(suffix)}` };
  if (contains !== undefined) return { regex: `${ci}(?s).*${escapeRegex(contains)}.*` };
  if (safe) {
    if (ignoreCase) m.fail('ignore_case', 'ignore_case with safe_regex: write (?i) in the regex');
    return { regex: safeRegex(safe) };
  }
  throw new XdsFieldError(m.path, 'one of exact, prefix, suffix, contains, safe_regex is required');
}

export function safeRegex(r: Fields): string {
  const regex = r.requiredStr('regex');
  r.skip('google_re2');
  r.done();
  return regex;
}

export function headerMatcher(h: Fields): Raw {
  const out: Raw = { name: h.requiredStr('name') };
  const invert = h.bool('invert_match');
  if (invert) out.invert = true;
  const exact = h.str('exact_match');
  const safe = h.message('safe_regex_match');
  const present = h.bool('present_match');
  const sm = h.message('string_match');
  const prefix = h.str('prefix_match');
  const suffix = h.str('suffix_match');
  const contains = h.str('contains_match');
  if (h.has('range_match')) h.fail('range_match', 'range matches are not supported');
  h.skip('treat_missing_header_as_empty');
  h.done();
  if (exact !== undefined) return { ...out, exact };
  if (safe) return { ...out, regex: safeRegex(safe) };
  if (sm) return { ...out, ...stringMatcher(sm) };
  if (prefix !== undefined) return { ...out, regex: `(?s)${escapeRegex(prefix)}.*` };
  if (suffix !== undefined) return { ...out, regex: `(?s).*${escapeRegex(suffix)}` };
  if (contains !== undefined) return { ...out, regex: `(?s).*${escapeRegex(contains)}.*` };
  // No value matcher: Envoy's present_match (or an empty one) means "present".
  return { ...out, present: present ?? true };
}

export function headersToAdd(list: Fields[]): Raw[] {
  return list.map((h) => {
    const hv = h.requiredMessage('header');
    const name = hv.requiredStr('key');
    const value = hv.str('value') ?? '';
    if (hv.has('raw_value')) hv.fail('raw_value', 'raw_value is not supported (use value)');
    hv.done();
    const appendFlag = h.wrappedBool('append');
    const action = h.str('append_action') ?? 'APPEND_IF_EXISTS_OR_ADD';
    if (action === 'ADD_IF_ABSENT') h.fail('append_action', 'ADD_IF_ABSENT is not supported yet');
    h.skip('keep_empty_value');
    h.done();
    // Envoy's default appends; OVERWRITE_IF_EXISTS_OR_ADD (or append: false) replaces.
    const append = appendFlag ?? action === 'APPEND_IF_EXISTS_OR_ADD';
    return { name, value, append };
  });
}

