/**
 * Virtual host selection (src/router/router.ts), including its memo of the last authority: a
 * lookup must answer the same whatever was looked up before it.
 */
import { describe, expect, it } from 'vitest';
import { virtualHost } from '../src/config/route-schema.ts';
import { Router, type RequestView } from '../src/router/router.ts';

const request: RequestView = { method: 'GET', path: '/', query: '', header: () => undefined };

function router(): Router {
  const hosts = [
    { name: 'exact', domains: ['api.example.com'], routes: [{ direct_response: { status: 200 } }] },
    { name: 'with-port', domains: ['api.example.com:8443'], routes: [{ direct_response: { status: 200 } }] },
    { name: 'suffix', domains: ['*.example.com'], routes: [{ direct_response: { status: 200 } }] },
    { name: 'prefix', domains: ['internal.*'], routes: [{ direct_response: { status: 200 } }] },
    { name: 'fallback', domains: ['*'], routes: [{ direct_response: { status: 200 } }] },
  ].map((h) => virtualHost.parse(h));
  return new Router(hosts);
}

const expected: [string, string][] = [
  ['api.example.com', 'exact'],
  ['API.Example.com:80', 'exact'],
  ['api.example.com:8443', 'with-port'],
  ['www.example.com', 'suffix'],
  ['www.example.com:8080', 'suffix'],
  ['internal.corp', 'prefix'],
  ['example.org', 'fallback'],
  ['', 'fallback'],
  ['[::1]:8080', 'fallback'],
];

describe('Router virtual hosts', () => {
  it('picks by exact name, name with port, suffix, prefix, then the fallback', () => {
    const r = router();
    for (const [authority, vh] of expected) expect(r.route(authority, request)?.virtualHost, authority).toBe(vh);
  });

  it('answers the same when the same authority repeats or alternates with others (the memo)', () => {
    const r = router();
    const fresh = router();
    for (let i = 0; i < 200; i++) {
      const [authority, vh] = expected[(i * 7) % expected.length];
      for (let k = 0; k <= i % 3; k++) expect(r.route(authority, request)?.virtualHost, authority).toBe(vh);
      expect(fresh.route(authority, request)?.virtualHost).toBe(vh);
    }
  });

  it('answers 404 (undefined) with no fallback, also for a repeated authority', () => {
    const r = new Router([virtualHost.parse({ name: 'only', domains: ['a.test'], routes: [{ direct_response: { status: 200 } }] })]);
    expect(r.route('b.test', request)).toBeUndefined();
    expect(r.route('b.test', request)).toBeUndefined();
    expect(r.route('a.test', request)?.virtualHost).toBe('only');
    expect(r.route('b.test', request)).toBeUndefined();
  });
});
