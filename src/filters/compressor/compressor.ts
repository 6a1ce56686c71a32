/**
 * compressor: compresses responses with the best algorithm the client accepts (brotli, zstd,
 * gzip, in the configured order), for the configured content types and sizes. Never for HEAD,
 * 204/304, ranges (206, Content-Range), already-encoded bodies or `Cache-Control: no-transform`;
 * a strong ETag is weakened (the bytes differ) unless disable_on_etag_header says to skip.
 * Compression runs in node:zlib off the event loop; its output is sent on as it comes.
 */
import zlib from 'node:zlib';
import type { HeaderMap } from '../../stream/header-map.ts';
import type { BuiltHttpFilter, DataStatus, FilterFactory, FilterStatus, HttpFilter, HttpFilterCallbacks } from '../api.ts';
import { compressorConfig, type CompressorConfig } from './config.ts';

type Algorithm = CompressorConfig['algorithms'][number];

/** The algorithm to use: the first of ours the client's Accept-Encoding allows (q > 0). */
export function chooseEncoding(acceptEncoding: string | undefined, ours: readonly Algorithm[]): Algorithm | undefined {
  if (acceptEncoding === undefined) return undefined;
  const q = new Map<string, number>();
  for (const part of acceptEncoding.split(',')) {
    const [name, ...params] = part.trim().toLowerCase().split(';');
    if (!name) continue;
    let weight = 1;
    for (const p of params) {
      const m = /^\s*q\s*=\s*([0-9.]+)\s*$/.exec(p);
      if (m) weight = Number(m[1]);
    }
    q.set(name, Number.isFinite(weight) ? weight : 0);
  }
  for (const a of ours) {
    const w = q.get(a) ?? q.get('*');
    if (w !== undefined && w > 0) return a;
  }
  return undefined;
}

function makeStream(a: Algorithm, level: number): zlib.Gzip | zlib.BrotliCompress | zlib.ZstdCompress {
  switch (a) {
    case 'gzip': return zlib.createGzip({ level });
    case 'br': return zlib.createBrotliCompress({ params: { [zlib.constants.BROTLI_PARAM_QUALITY]: Math.min(11, level) } });
    case 'zstd': return zlib.createZstdCompress({ params: { [zlib.constants.ZSTD_c_compressionLevel]: level } });
  }
}

interface Policy {
  cfg: CompressorConfig;
  types: readonly string[];
}

class Compressor implements HttpFilter {
  private readonly p: Policy;
  private readonly cb: HttpFilterCallbacks;
  private stream: zlib.Gzip | zlib.BrotliCompress | zlib.ZstdCompress | undefined;
  /** Trailers wait for the compressed body's last bytes. */
  private trailersWaiting = false;
  private ended = false;

  constructor(p: Policy, cb: HttpFilterCallbacks) {
    this.p = p;
    this.cb = cb;
  }

  encodeHeaders(h: HeaderMap, endStream: boolean): FilterStatus {
    const algorithm = endStream ? undefined : this.applies(h);
    if (algorithm === undefined) return 'continue';
    h.remove('content-length');
    h.contentLength = -1;
    h.set('content-encoding', algorithm);
    const vary = h.get('vary');
    if (vary === undefined) h.set('vary', 'Accept-Encoding');
    else if (!/accept-encoding|\*/i.test(vary)) h.set('vary', `${vary}, Accept-Encoding`);
    const etag = h.get('etag');
    if (etag !== undefined && !etag.startsWith('W/')) h.set('etag', `W/${etag}`);
    const s = makeStream(algorithm, this.p.cfg.level);
    s.on('data', (chunk: Buffer) => this.cb.injectEncodedData(chunk, false));
    s.on('end', () => {
      if (this.trailersWaiting) this.cb.continueEncoding();
      else this.cb.injectEncodedData(Buffer.alloc(0), true);
    });
    s.on('error', (err) => this.cb.logger.error({ err }, 'compressor failed; response cut'));
    this.stream = s;
    return 'continue';
  }

  /** The algorithm for this response, or undefined: leave it alone. */
  private applies(h: HeaderMap): Algorithm | undefined {
    const req = this.cb.requestHeaders;
    if (req.method === 'HEAD' || h.status < 200 || h.status === 204 || h.status === 206 || h.status === 304) return undefined;
    if (h.has('content-encoding') || h.has('content-range')) return undefined;
    if (/no-transform/i.test(h.get('cache-control') ?? '')) return undefined;
    if (this.p.cfg.disable_on_etag_header && h.has('etag')) return undefined;
    const type = (h.get('content-type') ?? '').split(';', 1)[0].trim().toLowerCase();
    if (!this.p.types.includes(type)) return undefined;
    const length = h.contentLength >= 0 ? h.contentLength : Number(h.get('content-length') ?? -1);
    if (length >= 0 && length < this.p.cfg.min_content_length) return undefined;
    return chooseEncoding(req.get('accept-encoding'), this.p.cfg.algorithms);
  }

  encodeData(data: Buffer, endStream: boolean): DataStatus {
    const s = this.stream;
    if (s === undefined) return 'continue';
    // zlib keeps the buffer until it has read it: a reused (volatile) view must be copied.
    if (data.length > 0) s.write(Buffer.from(data));
    if (endStream) this.end();
    return 'consume';
  }

  encodeTrailers(): FilterStatus {
    if (this.stream === undefined) return 'continue';
    this.trailersWaiting = true;
    this.end();
    return 'stop';
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.stream!.end();
  }

  onDestroy(): void {
    this.stream?.destroy();
  }
}

export const compressorFilter: FilterFactory<CompressorConfig> = {
  name: 'compressor',
  schema: compressorConfig,
  buildHttp(cfg): BuiltHttpFilter {
    const p: Policy = { cfg, types: cfg.content_types.map((t) => t.toLowerCase()) };
    return { create: (cb) => new Compressor(p, cb) };
  },
};
