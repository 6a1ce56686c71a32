/**
 * Route regexes run on RE2 (linear time): a catastrophic-backtracking route answers at once and
 * the other requests on the same worker are not held up. Malformed escapes in the path and the
 * query route normally; header and query matching follow Envoy's case rules.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawExchange, splitResponses } from './support/http.ts';
import { startShuttle, testConfig, type ShuttleProcess } from './support/shuttle.ts';

let shuttle: ShuttleProcess;
let port: number;

const reply = (body: string) => ({ direct_response: { status: 200, body } });

beforeAll(async () => {
  shuttle = startShuttle(testConfig({
    listeners: [{
      name: 'web',
      address: '127.0.0.1:0',
      protocol: 'http',
      access_log: false,
      virtual_hosts: [{
        name: 'all',
        domains: ['*'],
        routes: [
          { match: { regex: '/search/(a+)+b' }, ...reply('search') },
          { match: { prefix: '/h', headers: [{ name: 'X-Token', regex: '(x|xx)+y' }] }, ...reply('header regex') },
          { match: { prefix: '/q', query_params: [{ name: 'term', regex: '(a|aa)+c' }] }, ...reply('query regex') },
          { match: { regex: '/files/(%[0-9A-Fa-f]{2}|[a-z])+' }, ...reply('escaped file') },
          { match: { prefix: '/case', headers: [{ name: 'x-mode', exact: 'Fast' }] }, ...reply('mode Fast') },
          { match: { prefix: '/case', headers: [{ name: 'X-MODE', exact: 'slow', ignore_case: true }] }, ...reply('mode slow, any case') },
          { match: { prefix: '/case', query_params: [{ name: 'Flag', exact: 'on' }] }, ...reply('Flag on') },
          { match: { prefix: '/CI/', case_sensitive: false }, ...reply('case-insensitive prefix') },
          { match: { prefix: '/' }, ...reply('fallback') },
        ],
      }],
    }],
    clusters: [{ name: 'unused', hosts: ['127.0.0.1:1'] }],
  }), { threads: 1 });
  port = (await shuttle.ready()).listeners.web.port;
});

afterAll(async () => {
  await shuttle?.stop();
});

/** One request on its own connection: status, body and how long the answer took. */
function timedGet(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    s.on('connect', () => s.write(`GET ${path} HTTP/1.1\r\nHost: a\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}Connection: close\r\n\r\n`));
    s.on('data', (d) => (text += d.toString('latin1')));
    s.on('error', reject);
    s.on('close', () => {
      const [r] = splitResponses(text);
      if (!r) return reject(new Error(`no response to ${path}: ${JSON.stringify(text)}`));
      resolve({ status: r.status, body: r.body, ms: performance.now() - started });
    });
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

describe('route regexes in linear time', () => {
  it('answers a catastrophic-backtracking route at once, and the same worker keeps serving others', async () => {
    const baseline: number[] = [];
    for (let i = 0; i < 20; i++) baseline.push((await timedGet('/other')).ms);

    // 28 a's took V8's backtracking engine ~1.5 s (doubling with each a); RE2 is linear.
    const redos = `/search/${'a'.repeat(28)}`;
    const [attack, header, query, unrelated] = await Promise.all([
      timedGet(redos),
      timedGet('/h', { 'x-token': `${'x'.repeat(30)}z` }),
      timedGet(`/q?term=${'a'.repeat(30)}`),
      // Sent with the others: with a backtracking engine it would wait behind them.
      new Promise<void>((r) => setTimeout(r, 5)).then(() => timedGet('/other')),
    ]);
    console.log(`regex e2e: unrelated request median ${median(baseline).toFixed(2)} ms alone; with 3 ReDoS requests: attack ${attack.ms.toFixed(2)} ms, unrelated ${unrelated.ms.toFixed(2)} ms`);
    expect([attack.status, attack.body]).toEqual([200, 'fallback']);
    expect(header.body).toBe('fallback');
    expect(query.body).toBe('fallback');
    expect(unrelated.body).toBe('fallback');
    // Bounds far above noise on a busy 2-core machine, far below the seconds of backtracking.
    expect(attack.ms).toBeLessThan(500);
    expect(unrelated.ms).toBeLessThan(500);

    // Longer inputs stay linear: a 16 KB path of a's.
    const long = await timedGet(`/search/${'a'.repeat(16 * 1024)}`);
    expect(long.body).toBe('fallback');
    expect(long.ms).toBeLessThan(1000);
    expect((await timedGet('/search/aaab')).body).toBe('search');
    expect((await timedGet('/h', { 'x-token': 'xxxy' })).body).toBe('header regex');
    expect((await timedGet('/q?term=aac')).body).toBe('query regex');
  });

  it('routes malformed escapes in the path and query without resetting the connection', async () => {
    const { text, closed } = await rawExchange(port, [
      'GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n',
      'GET /files/%E2%82%ACabc HTTP/1.1\r\nHost: a\r\n\r\n',
      'GET /files/%zz HTTP/1.1\r\nHost: a\r\n\r\n',
      'GET /q?term=%zz&%zz=1 HTTP/1.1\r\nHost: a\r\n\r\n',
      'GET /q?term=a%61c HTTP/1.1\r\nHost: a\r\n\r\n',
      'GET /search/%ff%fe HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    ].join(''));
    expect(closed).toBe(true);
    // Paths match as sent (percent-encoded, as Envoy without normalisation); query values decoded.
    expect(splitResponses(text).map((r) => [r.status, r.body])).toEqual([
      [200, 'fallback'], [200, 'escaped file'], [200, 'fallback'], [200, 'fallback'], [200, 'query regex'], [200, 'fallback'],
    ]);
  });

  it('follows Envoy case rules: header names any case, values and query names exact unless ignore_case', async () => {
    expect((await timedGet('/case', { 'X-Mode': 'Fast' })).body).toBe('mode Fast');
    expect((await timedGet('/case', { 'x-mode': 'fast' })).body).toBe('fallback');
    expect((await timedGet('/case', { 'x-mode': 'SLOW' })).body).toBe('mode slow, any case');
    expect((await timedGet('/case?Flag=on')).body).toBe('Flag on');
    expect((await timedGet('/case?flag=on')).body).toBe('fallback');
    expect((await timedGet('/case?Flag=ON')).body).toBe('fallback');
    expect((await timedGet('/ci/x')).body).toBe('case-insensitive prefix');
    expect((await timedGet('/Ci/x')).body).toBe('case-insensitive prefix');
  });
});
