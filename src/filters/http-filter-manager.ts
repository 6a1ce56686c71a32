/**
 * Runs one stream's HTTP filters (Envoy's FilterManager): the request through the decoder hooks in
 * order, then to the router (the ProxyStream); the response through the encoder hooks in reverse
 * order, then to the downstream codec. It stands in for the downstream encoder, so everything the
 * ProxyStream sends (upstream responses and its own local replies) passes the encoder filters.
 *
 *   decodeHeaders ─▶ f0 ─▶ f1 ─▶ … ─▶ host.routeRequest      host.send* ─▶ fn … f1 ─▶ f0 ─▶ codec
 *                    'stop': held until continueDecoding()        'stop' / 'consume' likewise
 *
 * A filter that stops holds what follows (data, trailers) in this manager, bounded: past
 * `HOLD_LIMIT` bytes the downstream stops being read (request) or the stream is reset (response).
 */
import type { StreamEncoder, StreamResetReason, StreamWriteCallbacks } from '../layers.ts';
import type { Logger } from '../log/logger.ts';
import type { HeaderMap } from '../stream/header-map.ts';
import type { DataStatus, FilterLocalReply, FilterStatus, HttpFilter, HttpFilterCallbacks, StreamInfo } from './api.ts';
import type { HttpFilterChain } from './chain.ts';
import type { ResponseFlag } from './response-flags.ts';

/** Request bytes held while a filter stops before the downstream is told to stop sending. */
const HOLD_LIMIT = 64 * 1024;

/** What the manager drives: the ProxyStream (the router, the access log). */
export interface FilterHost {
  /** The request passed every decoder filter's headers hook. */
  routeRequest(headers: HeaderMap, endStream: boolean): void;
  requestData(data: Buffer, endStream: boolean): void;
  requestTrailers(trailers: HeaderMap): void;
  /** A filter answered. */
  filterReply(reply: FilterLocalReply): void;
  /** A filter changed what the route depends on. */
  clearRouteCache(): void;
  setResponseFlag(flag: ResponseFlag): void;
  /** The stream is over (answered, completed or reset): iteration stops. */
  readonly ended: boolean;
}

type Held = { data: Buffer[]; bytes: number; end: boolean; trailers: HeaderMap | undefined };

const emptyHeld = (): Held => ({ data: [], bytes: 0, end: false, trailers: undefined });

/** One filter of one stream: its instance and the callbacks it was made with. */
class FilterSlot implements HttpFilterCallbacks {
  readonly manager: HttpFilterManager;
  readonly index: number;
  filter!: HttpFilter;

  constructor(manager: HttpFilterManager, index: number) {
    this.manager = manager;
    this.index = index;
  }

  get info(): StreamInfo {
    return this.manager.info;
  }

  get requestHeaders(): HeaderMap {
    return this.manager.requestHeaders!;
  }

  get logger(): Logger {
    return this.manager.logger;
  }

  continueDecoding(): void {
    this.manager.continueDecoding(this.index);
  }

  continueEncoding(): void {
    this.manager.continueEncoding(this.index);
  }

  sendLocalReply(reply: FilterLocalReply): void {
    this.manager.localReply(reply);
  }

  injectEncodedData(data: Buffer, endStream: boolean): void {
    this.manager.injectEncoded(this.index, data, endStream);
  }

  clearRouteCache(): void {
    this.manager.host.clearRouteCache();
  }

  setResponseFlag(flag: ResponseFlag): void {
    this.manager.host.setResponseFlag(flag);
  }
}

export class HttpFilterManager implements StreamEncoder {
  readonly host: FilterHost;
  readonly info: StreamInfo;
  readonly logger: Logger;
  private readonly downstream: StreamEncoder;
  private readonly slots: FilterSlot[];
  requestHeaders: HeaderMap | undefined;

  // Decoding: the filter the request waits on (-1: none), and what arrived meanwhile.
  private decodeWaitingOn = -1;
  private decodeHeadersDone = false;
  private decodeHeld: Held | undefined;
  private requestEnd = false;
  private readDisabled = false;

  // Encoding: the same for the response (filters run from the last to the first).
  private encodeWaitingOn = -1;
  private encodeHeadersDone = false;
  private encodeHeld: Held | undefined;
  private responseHeaders: HeaderMap | undefined;
  private responseEnd = false;
  /** The downstream got the response's last frame. */
  private encodeComplete = false;
  /** The stream ended while a filter still had response data to send (a compressor flushing). */
  private destroyWhenEncoded = false;
  private destroyed = false;
  private resetSent = false;

  constructor(host: FilterHost, downstream: StreamEncoder, chain: HttpFilterChain, route: object | undefined, info: StreamInfo, logger: Logger) {
    this.host = host;
    this.downstream = downstream;
    this.info = info;
    this.logger = logger;
    const built = chain.forRoute(route);
    this.slots = new Array(built.length);
    for (let i = 0; i < built.length; i++) {
      const slot = new FilterSlot(this, i);
      this.slots[i] = slot;
      slot.filter = built[i].create(slot);
    }
  }

  // ---- the request --------------------------------------------------------------------------

  decodeHeaders(headers: HeaderMap, endStream: boolean): void {
    this.requestHeaders = headers;
    this.requestEnd = endStream;
    this.runDecodeHeaders(0);
  }

  private runDecodeHeaders(from: number): void {
    const h = this.requestHeaders!;
    for (let i = from; i < this.slots.length; i++) {
      const f = this.slots[i].filter;
      if (f.decodeHeaders === undefined) continue;
      const status = f.decodeHeaders(h, this.requestEnd && this.decodeHeld === undefined);
      if (this.host.ended) return;
      if (status === 'stop') {
        this.decodeWaitingOn = i;
        return;
      }
    }
    this.decodeHeadersDone = true;
    const held = this.decodeHeld;
    this.decodeHeld = undefined;
    const headersEnd = this.requestEnd && (held === undefined || (held.data.length === 0 && held.trailers === undefined));
    this.host.routeRequest(h, headersEnd);
    if (held !== undefined && !this.host.ended) this.releaseHeld(held, 0);
  }

  decodeData(data: Buffer, endStream: boolean): void {
    if (endStream) this.requestEnd = true;
    if (this.decodeWaitingOn >= 0 || !this.decodeHeadersDone) return this.hold(data, endStream);
    this.runDecodeData(0, data, endStream);
  }

  decodeTrailers(trailers: HeaderMap): void {
    this.requestEnd = true;
    if (this.decodeWaitingOn >= 0 || !this.decodeHeadersDone) {
      (this.decodeHeld ??= emptyHeld()).trailers = trailers;
      return;
    }
    this.runDecodeTrailers(0, trailers);
  }

  private runDecodeData(from: number, data: Buffer, endStream: boolean): void {
    for (let i = from; i < this.slots.length; i++) {
      const f = this.slots[i].filter;
      if (f.decodeData === undefined) continue;
      const status = f.decodeData(data, endStream);
      if (this.host.ended) return;
      if (status === 'stop') {
        this.decodeWaitingOn = i;
        return this.hold(data, endStream);
      }
    }
    this.host.requestData(data, endStream);
  }

  private runDecodeTrailers(from: number, trailers: HeaderMap): void {
    for (let i = from; i < this.slots.length; i++) {
      const f = this.slots[i].filter;
      if (f.decodeTrailers === undefined) continue;
      const status = f.decodeTrailers(trailers);
      if (this.host.ended) return;
      if (status === 'stop') {
        this.decodeWaitingOn = i;
        (this.decodeHeld ??= emptyHeld()).trailers = trailers;
        return;
      }
    }
    this.host.requestTrailers(trailers);
  }

  /** Request data that arrived while a filter held the request. */
  private hold(data: Buffer, endStream: boolean): void {
    const held = (this.decodeHeld ??= emptyHeld());
    if (data.length > 0) held.data.push(data);
    held.bytes += data.length;
    held.end ||= endStream;
    if (held.bytes > HOLD_LIMIT && !this.readDisabled && !endStream) {
      this.readDisabled = true;
      this.downstream.readDisable(true);
    }
  }

  continueDecoding(index: number): void {
    if (this.destroyed || this.host.ended || this.decodeWaitingOn !== index) return;
    this.decodeWaitingOn = -1;
    if (!this.decodeHeadersDone) return this.runDecodeHeaders(index + 1);
    const held = this.decodeHeld;
    this.decodeHeld = undefined;
    if (held !== undefined) this.releaseHeld(held, index + 1);
  }

  /** Sends held request data (and trailers) on from filter `from`. */
  private releaseHeld(held: Held, from: number): void {
    if (this.readDisabled) {
      this.readDisabled = false;
      this.downstream.readDisable(false);
    }
    const { data, end, trailers } = held;
    const body = data.length === 0 ? undefined : data.length === 1 ? data[0] : Buffer.concat(data);
    if (body !== undefined || (end && trailers === undefined)) {
      this.runDecodeData(from, body ?? Buffer.alloc(0), end && trailers === undefined);
      if (this.host.ended || this.decodeWaitingOn >= 0) {
        if (trailers !== undefined) (this.decodeHeld ??= emptyHeld()).trailers = trailers;
        return;
      }
    }
    if (trailers !== undefined) this.runDecodeTrailers(from, trailers);
  }

  // ---- the response: this manager is the ProxyStream's downstream encoder ------------------------

  get protocol(): StreamEncoder['protocol'] {
    return this.downstream.protocol;
  }

  get bytesSent(): number {
    return this.downstream.bytesSent;
  }

  encodeInformational(headers: HeaderMap): void {
    this.downstream.encodeInformational(headers);
  }

  encodeHeaders(headers: HeaderMap, endStream: boolean): void {
    this.responseHeaders = headers;
    this.responseEnd = endStream;
    this.runEncodeHeaders(this.slots.length - 1);
  }

  private runEncodeHeaders(from: number): void {
    const h = this.responseHeaders!;
    for (let i = from; i >= 0; i--) {
      const f = this.slots[i].filter;
      if (f.encodeHeaders === undefined) continue;
      const status = f.encodeHeaders(h, this.responseEnd && this.encodeHeld === undefined);
      if (this.destroyed) return;
      if (status === 'stop') {
        this.encodeWaitingOn = i;
        return;
      }
    }
    this.encodeHeadersDone = true;
    const held = this.encodeHeld;
    this.encodeHeld = undefined;
    const end = this.responseEnd && (held === undefined || (held.data.length === 0 && held.trailers === undefined));
    this.downstream.encodeHeaders(h, end);
    if (end) this.encoded();
    if (held !== undefined) this.releaseEncodeHeld(held, this.slots.length - 1);
  }

  encodeData(data: Buffer, endStream: boolean, isVolatile?: boolean): void {
    if (endStream) this.responseEnd = true;
    if (this.encodeWaitingOn >= 0 || !this.encodeHeadersDone) {
      // Held past this call: a view of a reused buffer must be copied.
      return this.holdEncoded(isVolatile ? Buffer.from(data) : data, endStream);
    }
    this.runEncodeData(this.slots.length - 1, data, endStream, isVolatile);
  }

  private runEncodeData(from: number, data: Buffer, endStream: boolean, isVolatile?: boolean): void {
    for (let i = from; i >= 0; i--) {
      const f = this.slots[i].filter;
      if (f.encodeData === undefined) continue;
      const status: DataStatus = f.encodeData(data, endStream);
      if (this.destroyed) return;
      if (status === 'consume') return;
      if (status === 'stop') {
        this.encodeWaitingOn = i;
        return this.holdEncoded(isVolatile ? Buffer.from(data) : data, endStream);
      }
    }
    this.downstream.encodeData(data, endStream, isVolatile);
    if (endStream) this.encoded();
  }

  encodeTrailers(trailers: HeaderMap): void {
    this.responseEnd = true;
    if (this.encodeWaitingOn >= 0 || !this.encodeHeadersDone) {
      (this.encodeHeld ??= emptyHeld()).trailers = trailers;
      return;
    }
    this.runEncodeTrailers(this.slots.length - 1, trailers);
  }

  private runEncodeTrailers(from: number, trailers: HeaderMap): void {
    for (let i = from; i >= 0; i--) {
      const f = this.slots[i].filter;
      if (f.encodeTrailers === undefined) continue;
      const status: FilterStatus = f.encodeTrailers(trailers);
      if (this.destroyed) return;
      if (status === 'stop') {
        this.encodeWaitingOn = i;
        (this.encodeHeld ??= emptyHeld()).trailers = trailers;
        return;
      }
    }
    this.downstream.encodeTrailers(trailers);
    this.encoded();
  }

  private encoded(): void {
    this.encodeComplete = true;
    if (this.destroyWhenEncoded) this.destroy();
  }

  private holdEncoded(data: Buffer, endStream: boolean): void {
    const held = (this.encodeHeld ??= emptyHeld());
    if (data.length > 0) held.data.push(data);
    held.bytes += data.length;
    held.end ||= endStream;
  }

  continueEncoding(index: number): void {
    if (this.destroyed || this.encodeWaitingOn !== index) return;
    this.encodeWaitingOn = -1;
    if (!this.encodeHeadersDone) return this.runEncodeHeaders(index - 1);
    const held = this.encodeHeld;
    this.encodeHeld = undefined;
    if (held !== undefined) this.releaseEncodeHeld(held, index - 1);
  }

  private releaseEncodeHeld(held: Held, from: number): void {
    const { data, end, trailers } = held;
    const body = data.length === 0 ? undefined : data.length === 1 ? data[0] : Buffer.concat(data);
    if (body !== undefined || (end && trailers === undefined)) {
      this.runEncodeData(from, body ?? Buffer.alloc(0), end && trailers === undefined);
      if (this.destroyed || this.encodeWaitingOn >= 0) {
        if (trailers !== undefined) (this.encodeHeld ??= emptyHeld()).trailers = trailers;
        return;
      }
    }
    if (trailers !== undefined) this.runEncodeTrailers(from, trailers);
  }

  /** Response data made by filter `index` (a compressor's output): on through the filters before it. */
  injectEncoded(index: number, data: Buffer, endStream: boolean): void {
    if (this.destroyed) return;
    this.runEncodeData(index - 1, data, endStream);
  }

  reset(reason: StreamResetReason): void {
    this.resetSent = true;
    this.downstream.reset(reason);
  }

  readDisable(disable: boolean): void {
    this.downstream.readDisable(disable);
  }

  setWriteCallbacks(callbacks: StreamWriteCallbacks): void {
    this.downstream.setWriteCallbacks(callbacks);
  }

  // ---- local replies and the end ---------------------------------------------------------------

  localReply(reply: FilterLocalReply): void {
    if (this.destroyed || this.host.ended) return;
    this.decodeWaitingOn = -1;
    this.decodeHeld = undefined;
    if (this.readDisabled) {
      this.readDisabled = false;
      this.downstream.readDisable(false);
    }
    if (reply.flag) this.host.setResponseFlag(reply.flag);
    this.host.filterReply(reply);
  }

  /**
   * The stream ended. A response still flowing out of a filter (a compressor's last bytes) is let
   * finish first; `reset`: the stream is gone and nothing more can be sent.
   */
  streamEnded(reset: boolean): void {
    if (!reset && !this.resetSent && this.responseHeaders !== undefined && !this.encodeComplete) {
      this.destroyWhenEncoded = true;
      return;
    }
    this.destroy();
  }

  /** Every filter hears the end once; nothing held is sent. */
  private destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.decodeHeld = undefined;
    this.encodeHeld = undefined;
    if (this.readDisabled) {
      this.readDisabled = false;
      this.downstream.readDisable(false);
    }
    for (const slot of this.slots) {
      try {
        slot.filter.onDestroy?.();
      } catch (err) {
        this.logger.error({ err }, 'a filter failed in onDestroy');
      }
    }
  }
}
