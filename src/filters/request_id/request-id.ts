/**
 * request_id: gives every request an id (kept when the client sent a sane one and is trusted to),
 * and reads the trace id of W3C traceparent or B3 headers for the access log. The tracing headers
 * themselves pass upstream untouched: Shuttle joins the trace, it does not start spans.
 */
import { randomUUID } from 'node:crypto';
import type { HeaderMap } from '../../stream/header-map.ts';
import type { BuiltHttpFilter, FilterFactory, FilterStatus, HttpFilter, HttpFilterCallbacks } from '../api.ts';
import { requestIdConfig, type RequestIdConfig } from './config.ts';

/** An id a client may set: printable ASCII without spaces, not absurdly long. */
const SANE_ID = /^[\x21-\x7e]{1,128}$/;
const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}/;
const B3_TRACE_ID = /^([0-9a-f]{16}|[0-9a-f]{32})$/;

/** The trace id of the request's tracing headers, if any (W3C first, then B3 multi and single). */
export function traceIdOf(h: HeaderMap): string | undefined {
  const tp = h.get('traceparent');
  if (tp !== undefined) {
    const m = TRACEPARENT.exec(tp);
    if (m && m[1] !== '00000000000000000000000000000000') return m[1];
  }
  const b3 = h.get('x-b3-traceid');
  if (b3 !== undefined && B3_TRACE_ID.test(b3)) return b3;
  const single = h.get('b3');
  if (single !== undefined) {
    const id = single.split('-', 1)[0];
    if (B3_TRACE_ID.test(id)) return id;
  }
  return undefined;
}

class RequestId implements HttpFilter {
  private readonly cfg: RequestIdConfig;
  private readonly header: string;
  private readonly cb: HttpFilterCallbacks;
  private id = '';

  constructor(cfg: RequestIdConfig, header: string, cb: HttpFilterCallbacks) {
    this.cfg = cfg;
    this.header = header;
    this.cb = cb;
  }

  decodeHeaders(h: HeaderMap): FilterStatus {
    const theirs = this.cfg.preserve_external ? h.get(this.header) : undefined;
    let id = theirs !== undefined && SANE_ID.test(theirs) ? theirs : undefined;
    if (id === undefined) {
      id = randomUUID();
      h.set(this.cfg.header, id);
    }
    this.id = id;
    const meta = this.cb.info.metadata;
    meta.set('request_id', id);
    const trace = traceIdOf(h);
    if (trace !== undefined) meta.set('trace_id', trace);
    return 'continue';
  }

  encodeHeaders(h: HeaderMap): FilterStatus {
    if (this.cfg.always_set_response && this.id !== '') h.set(this.cfg.header, this.id);
    return 'continue';
  }
}

export const requestIdFilter: FilterFactory<RequestIdConfig> = {
  name: 'request_id',
  schema: requestIdConfig,
  buildHttp(cfg): BuiltHttpFilter {
    const header = cfg.header.toLowerCase();
    return { create: (cb) => new RequestId(cfg, header, cb) };
  },
};
