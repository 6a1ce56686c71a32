/**
 * HTTP/2 field checks (src/codecs/http2/fields.ts) after a valid message: the checks remember
 * strings found valid, and must still refuse a different string of the same length.
 */
import { describe, expect, it } from 'vitest';
import { checkFields } from '../src/codecs/http2/fields.ts';

const request = (extra: string[], authority = 'example.com:8080') => [':method', 'GET', ':scheme', 'http', ':authority', authority, ':path', '/', ...extra];

describe('HTTP/2 field checks', () => {
  it('refuses a bad name, value or authority right after a good one of the same length', () => {
    const cases: [good: string[], bad: string[], authority?: [string, string]][] = [
      [['x-trace', 'abc'], ['x-trace', 'a\rc']],
      [['x-trace', 'abc'], ['x-trace', 'a\nc']],
      [['x-trace', 'abc'], ['x-trace', 'a\0c']],
      [['x-trace', 'abc'], ['x-trace', ' bc']],
      [['x-trace', 'abc'], ['x-trace', 'ab\t']],
      [['x-trace', 'abc'], ['X-trace', 'abc']],
      [['x-trace', 'abc'], ['x trace', 'abc']],
      [['x-trace', 'abc'], ['x-trace', 'abc'], ['example.com:8080', 'example.com:80x0']],
    ];
    for (const [good, bad, authority] of cases) {
      for (let i = 0; i < 3; i++) expect(checkFields(request(good, authority?.[0]), 'request', 'http')).not.toBeTypeOf('string');
      expect(checkFields(request(bad, authority?.[1]), 'request', 'http'), JSON.stringify(bad)).toBeTypeOf('string');
      // …and the good one still passes after the bad one.
      expect(checkFields(request(good, authority?.[0]), 'request', 'http')).not.toBeTypeOf('string');
    }
  });

  it('checks response values the same way', () => {
    const ok = [':status', '200', 'server', 'nginx/1.22.1'];
    expect(checkFields(ok.slice(), 'response', 'http')).not.toBeTypeOf('string');
    expect(checkFields([':status', '200', 'server', 'nginx/1.22\n1'], 'response', 'http')).toBeTypeOf('string');
    expect(checkFields(ok.slice(), 'response', 'http')).not.toBeTypeOf('string');
  });

  it('takes 1–15 digits as content-length and nothing else', () => {
    const length = (v: string) => {
      const h = checkFields([':status', '200', 'content-length', v], 'response', 'http');
      return typeof h === 'string' ? h : h.contentLength;
    };
    for (const v of ['0', '24', '007', '999999999999999']) expect(length(v)).toBe(Number(v));
    for (const v of ['', '-1', '+1', '1.0', '1e3', ' 1', '1 ', '0x10', '١', '1234567890123456', '2/', ':']) expect(length(v), JSON.stringify(v)).toMatch(/^invalid (value for )?content-length$/);
    expect(checkFields([':status', '200', 'content-length', '5', 'content-length', '5'], 'response', 'http')).not.toBeTypeOf('string');
    expect(checkFields([':status', '200', 'content-length', '5', 'content-length', '6'], 'response', 'http')).toBe('differing content-length values');
  });
});
