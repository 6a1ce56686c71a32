/** exact / prefix / suffix / regex conditions on a string (CORS origins, RBAC names, SNI). */
import { compileSafeRegex } from '../../regex/safe-regex.ts';
import type { StringMatcherConfig } from '../rbac/config.ts';

export function stringMatcher(m: StringMatcherConfig): (value: string) => boolean {
  if (m.exact !== undefined) {
    const e = m.exact;
    return (v) => v === e;
  }
  if (m.prefix !== undefined) {
    const p = m.prefix;
    return (v) => v.startsWith(p);
  }
  if (m.suffix !== undefined) {
    const s = m.suffix;
    return (v) => v.endsWith(s);
  }
  const re = compileSafeRegex(m.regex!);
  return (v) => re.matches(v);
}
