/**
 * Cost of the HTTP filter chain per request, in process: a request and its response (headers,
 * one body chunk each way) through a chain of 5 pass-through filters, against the same calls with
 * no chain. The difference is what a listener pays for having filters at all (target ≤ 0.5 µs).
 *
 *   node bench/filters.ts      (env: N=300000, REPS=7)
 */
import type { BuiltHttpFilter, HttpFilter, StreamInfo } from '../src/filters/api.ts';
import type { HttpFilterChain } from '../src/filters/chain.ts';
import { HttpFilterManager, type FilterHost } from '../src/filters/http-filter-manager.ts';
import type { StreamEncoder } from '../src/layers.ts';
import { HeaderMap } from '../src/stream/header-map.ts';
import { median } from './support/lib.ts';

const N = Number(process.env.N ?? 300_000);
const REPS = Number(process.env.REPS ?? 7);
const FILTERS = Number(process.env.FILTERS ?? 5);

/** A filter with every hook, each answering continue (the cheapest a real filter can be). */
class PassThrough implements HttpFilter {
  decodeHeaders() {
    return 'continue' as const;
  }
  decodeData() {
    return 'continue' as const;
  }
  encodeHeaders() {
    return 'continue' as const;
  }
  encodeData() {
    return 'continue' as const;
  }
}
const built: BuiltHttpFilter = { create: () => new PassThrough() };
const chain = { forRoute: () => Array(FILTERS).fill(built) } as unknown as HttpFilterChain;

let sink = 0;
const downstream = {
  protocol: 'HTTP/1.1',
  bytesSent: 0,
  encodeHeaders: () => sink++,
  encodeData: () => sink++,
  encodeTrailers: () => sink++,
  encodeInformational: () => {},
  reset: () => {},
  readDisable: () => {},
  setWriteCallbacks: () => {},
} as unknown as StreamEncoder;

const host: FilterHost = {
  ended: false,
  routeRequest: () => sink++,
  requestData: () => sink++,
  requestTrailers: () => {},
  filterReply: () => {},
  clearRouteCache: () => {},
  setResponseFlag: () => {},
};
const logger = {} as never;
const body = Buffer.alloc(512);

function info(): StreamInfo {
  return { listener: 'l', route: 'r', protocol: 'HTTP/1.1', grpc: false, clientIp: '127.0.0.1', localPort: 80, tls: undefined, metadata: new Map() };
}

function withChain(): number {
  const t = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    const req = HeaderMap.request('GET', '/x', 'h');
    const m = new HttpFilterManager(host, downstream, chain, undefined, info(), logger);
    m.decodeHeaders(req, false);
    m.decodeData(body, true);
    m.encodeHeaders(HeaderMap.response(200), false);
    m.encodeData(body, true);
    m.streamEnded(false);
  }
  return Number(process.hrtime.bigint() - t) / N;
}

function without(): number {
  const t = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    const req = HeaderMap.request('GET', '/x', 'h');
    host.routeRequest(req, false);
    host.requestData(body, true);
    downstream.encodeHeaders(HeaderMap.response(200), false);
    downstream.encodeData(body, true);
  }
  return Number(process.hrtime.bigint() - t) / N;
}

const a: number[] = [];
const b: number[] = [];
for (let r = 0; r < REPS; r++) {
  b.push(without());
  a.push(withChain());
}
const chainNs = median(a);
const baseNs = median(b);
console.log(`filter chain of ${FILTERS} pass-through filters, ${N} requests × ${REPS} runs (medians)`);
console.log(`  without a chain: ${baseNs.toFixed(0)} ns/request`);
console.log(`  with the chain:  ${chainNs.toFixed(0)} ns/request`);
console.log(`  chain cost:      ${((chainNs - baseNs) / 1000).toFixed(3)} µs/request (target ≤ 0.5 µs)`);
if (sink === 0) console.log('');
