/**
 * Streaming HTTP/1.1 decoder into MOSN's shape: a head (parsed), then body bytes (raw, as they came
 * off the wire, chunked framing included), then the end of the message (with trailers, if any).
 *
 *   feed(bytes) ─▶ onHead(head) ─▶ onBody(raw)* ─▶ onComplete(trailers)
 *                    │ (paused after each message until resume(): pipelined requests wait their turn)
 *
 * Only the head is parsed; a body is scanned just enough to find where it ends.
 */
import { ChunkedScanner } from './chunked.ts';
import { HttpParseError } from './errors.ts';
import { DEFAULT_HEAD_LIMITS, parseRequestHead, parseResponseHead, responseHasNoBody, type HeadLimits, type RequestHead, type ResponseHead } from './head.ts';

export interface DecoderHandler<H> {
  onHead(head: H): void;
  /**
   * Body bytes; the buffer may be a view into a socket chunk: copy it if kept. `last`: the body
   * ends with these bytes (known for Content-Length bodies; chunked ones end at onComplete).
   */
  onBody(chunk: Buffer, last: boolean): void;
  onComplete(trailers: string[]): void;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

/**
 * Up to this many bytes are turned into one latin1 string before looking for the end of a head:
 * the search then runs in V8 and the head is parsed from the same string. Larger reads (a head
 * followed by much body) search the bytes first, so that a long body is not copied into a string.
 */
const STRING_SEARCH_MAX = 4096;

type Latin1Buffer = Buffer & { latin1Slice(start: number, end: number): string };

/** Empty lines tolerated before a request line (RFC 9112 §2.2). */
const MAX_EMPTY_LINES = 4;

/** A LF in buf[from..to) not preceded by CR. */
function hasBareLf(buf: Buffer, from: number, to: number): boolean {
  for (let lf = buf.indexOf(10, from); lf >= 0 && lf < to; lf = buf.indexOf(10, lf + 1)) {
    if (lf === 0 || buf[lf - 1] !== 13) return true;
  }
  return false;
}

const CHUNKED = -1;
const UNTIL_CLOSE = -2;

const Mode = { Head: 0, Length: 1, Chunked: 2, UntilClose: 3, Paused: 4, Detached: 5 } as const;

export interface DecoderOptions {
  limits?: HeadLimits;
  /**
   * Chunked bodies: deliver only the payload (the stream layer re-frames for its own protocol)
   * instead of the raw bytes with their chunk framing.
   */
  payloadOnly?: boolean;
  /** Largest request body accepted (413 beyond it); responses are not limited. */
  maxBodyBytes?: number;
  /** Fed buffers are reused once feed() returns: bytes kept for later (a split head) are copied. */
  volatileInput?: boolean;
}

abstract class Http1Decoder<H extends RequestHead | ResponseHead> {
  protected mode: number = Mode.Head;
  private pending: Buffer | undefined;
  private remaining = 0;
  private chunked: ChunkedScanner | undefined;
  /** Bytes of an incomplete head already checked for bare LFs (0: at a message start). */
  private headScanned = 0;
  /** Before a message's first byte: empty lines may come first (requests), counted per message. */
  private atMessageStart = true;
  protected emptyLines = 0;
  protected readonly handler: DecoderHandler<H>;
  protected readonly limits: HeadLimits;
  protected readonly maxBodyBytes: number;
  private readonly volatileInput: boolean;
  private readonly payloadOnly: boolean;
  /** When payloadOnly: hands chunk payload ranges on (one closure per decoder, made at its first chunked body). */
  private payload: ((buf: Buffer, from: number, to: number) => void) | undefined;

  constructor(handler: DecoderHandler<H>, opts: DecoderOptions = {}) {
    this.handler = handler;
    this.limits = opts.limits ?? DEFAULT_HEAD_LIMITS;
    this.maxBodyBytes = opts.maxBodyBytes ?? Infinity;
    this.volatileInput = opts.volatileInput ?? false;
    this.payloadOnly = opts.payloadOnly ?? false;
  }

  /** True while a message has completed and the next one waits for resume(). */
  get paused(): boolean {
    return this.mode === Mode.Paused;
  }

  /** Bytes received but not yet decoded (pipelined messages waiting their turn). */
  get buffered(): number {
    return this.pending?.length ?? 0;
  }

  /** Feeds bytes; throws HttpParseError on malformed input. */
  feed(chunk: Buffer): void {
    if (this.mode === Mode.Detached) throw new Error('decoder is detached');
    if (this.pending) {
      chunk = Buffer.concat([this.pending, chunk]);
      this.pending = undefined;
    }
    this.run(chunk, 0);
  }

  /** Continues with buffered bytes after a message completed. */
  resume(): void {
    if (this.mode !== Mode.Paused) return;
    this.mode = Mode.Head;
    const rest = this.pending;
    this.pending = undefined;
    if (rest) this.run(rest, 0);
  }

  /** The peer closed: completes a body delimited by the close; false if a message was cut short. */
  end(): boolean {
    if (this.mode === Mode.UntilClose) {
      this.finish([]);
      return true;
    }
    return (this.mode === Mode.Head || this.mode === Mode.Paused) && !this.pending;
  }

  /** Stops decoding (the connection became a tunnel) and returns any bytes left over. */
  detach(): Buffer | undefined {
    this.mode = Mode.Detached;
    const rest = this.pending;
    this.pending = undefined;
    return rest;
  }

  protected abstract readonly errorCode: 'SHUTTLE_E_HTTP_BAD_REQUEST' | 'SHUTTLE_E_HTTP_BAD_RESPONSE';
  /** Parses text[start..end): a head without its final CRLF CRLF. */
  protected abstract parseHead(text: string, start: number, end: number): H;
  /** Body framing of a head just parsed: its length, CHUNKED or UNTIL_CLOSE. */
  protected abstract bodyLength(head: H): number;

  private run(buf: Buffer, i: number): void {
    const len = buf.length;
    while (i < len) {
      switch (this.mode) {
        case Mode.Head: {
          if (this.atMessageStart) {
            const at = this.skipEmptyLines(buf, i, len);
            if (at < 0) {
              // A CR that may begin one more empty line (at -at - 1): wait for the next byte.
              this.keep(buf, -at - 1);
              return;
            }
            i = at;
            if (i >= len) return;
            this.atMessageStart = false;
          }
          let text: string;
          let headLength: number;
          if (len - i <= STRING_SEARCH_MAX) {
            text = (buf as Latin1Buffer).latin1Slice(i, len);
            headLength = text.indexOf('\r\n\r\n');
          } else {
            const headEnd = buf.indexOf(CRLFCRLF, i);
            headLength = headEnd < 0 ? -1 : headEnd - i;
            text = headEnd < 0 ? '' : (buf as Latin1Buffer).latin1Slice(i, headEnd);
          }
          if (headLength < 0) {
            // Still incomplete: a bare LF (only the bytes not checked before) can never end a
            // head here, so it is refused now rather than at the header timeout.
            if (hasBareLf(buf, i + Math.max(0, this.headScanned - 1), len)) throw new HttpParseError(this.errorCode, 'bare LF in the header section');
            // (Up to 3 bytes of the final CRLF CRLF may be here already: they are not the head's.)
            if (len - i > this.limits.maxHeadBytes + 3) throw this.headTooLarge(buf, i, len);
            this.headScanned = len - i;
            this.keep(buf, i);
            return;
          }
          this.headScanned = 0;
          if (headLength > this.limits.maxHeadBytes) throw this.headTooLarge(buf, i, i + headLength);
          const head = this.parseHead(text, 0, headLength);
          i += headLength + 4;
          const length = this.bodyLength(head);
          this.handler.onHead(head);
          if (length === CHUNKED) {
            this.chunked = new ChunkedScanner(this.errorCode);
            this.mode = Mode.Chunked;
          } else if (length === UNTIL_CLOSE) {
            this.mode = Mode.UntilClose;
          } else if (length === 0) {
            this.finish([]);
          } else {
            this.remaining = length;
            this.mode = Mode.Length;
          }
          break;
        }
        case Mode.Length: {
          const take = Math.min(this.remaining, len - i);
          this.remaining -= take;
          this.handler.onBody(buf.subarray(i, i + take), this.remaining === 0);
          i += take;
          if (this.remaining === 0) this.finish([]);
          break;
        }
        case Mode.Chunked: {
          const scanner = this.chunked!;
          const end = scanner.scan(buf, i, len, this.payloadOnly ? (this.payload ??= (b, from, to) => this.handler.onBody(b.subarray(from, to), false)) : undefined);
          if (scanner.payloadBytes > this.maxBodyBytes) throw new HttpParseError('SHUTTLE_E_HTTP_BODY_TOO_LARGE', `body larger than ${this.maxBodyBytes} bytes`);
          const stop = end < 0 ? len : end;
          if (!this.payloadOnly) this.handler.onBody(buf.subarray(i, stop), false);
          i = stop;
          if (end >= 0) this.finish(scanner.trailers);
          break;
        }
        case Mode.UntilClose:
          this.handler.onBody(i === 0 ? buf : buf.subarray(i), false);
          return;
        case Mode.Paused:
        case Mode.Detached:
          this.keep(buf, i);
          return;
      }
    }
  }

  /** Where a message starts, past empty lines that may precede it (requests only). */
  /** Where the message starts past empty lines before it; -(i + 1) to wait for the byte after a CR at i. */
  protected skipEmptyLines(_buf: Buffer, i: number, _len: number): number {
    return i;
  }

  protected headTooLarge(_buf: Buffer, _start: number, _end: number): HttpParseError {
    return new HttpParseError('SHUTTLE_E_HTTP_HEADERS_TOO_LARGE', `header section larger than ${this.limits.maxHeadBytes} bytes`);
  }

  /** Keeps buf[i..] for the next feed() or resume(). */
  private keep(buf: Buffer, i: number): void {
    this.pending = this.volatileInput ? Buffer.from(buf.subarray(i)) : buf.subarray(i);
  }

  private finish(trailers: string[]): void {
    this.atMessageStart = true;
    this.emptyLines = 0;
    this.chunked = undefined;
    this.mode = Mode.Paused;
    this.handler.onComplete(trailers);
  }
}

export class RequestDecoder extends Http1Decoder<RequestHead> {
  protected readonly errorCode = 'SHUTTLE_E_HTTP_BAD_REQUEST';

  protected parseHead(text: string, start: number, end: number): RequestHead {
    return parseRequestHead(text, start, end, this.limits);
  }

  /**
   * RFC 9112 §2.2: a server SHOULD ignore at least one empty line (CRLF) received before the
   * request line. A few are skipped (clients add one after a POST body); more are an error.
   */
  protected override skipEmptyLines(buf: Buffer, i: number, len: number): number {
    while (i < len && buf[i] === 13 && this.emptyLines < MAX_EMPTY_LINES) {
      if (i + 1 === len) return -(i + 1);
      if (buf[i + 1] !== 10) break;
      this.emptyLines++;
      i += 2;
    }
    return i;
  }

  /** A request line that alone passes the limit is a URI too long (414), else the fields are (431). */
  protected override headTooLarge(buf: Buffer, start: number, end: number): HttpParseError {
    const lf = buf.indexOf(10, start);
    if (lf < 0 || lf >= end || lf - start > this.limits.maxHeadBytes) return new HttpParseError('SHUTTLE_E_HTTP_URI_TOO_LONG', `request line longer than ${this.limits.maxHeadBytes} bytes`);
    return super.headTooLarge(buf, start, end);
  }

  protected bodyLength(head: RequestHead): number {
    if (head.contentLength > this.maxBodyBytes) throw new HttpParseError('SHUTTLE_E_HTTP_BODY_TOO_LARGE', `Content-Length ${head.contentLength} over the limit of ${this.maxBodyBytes}`);
    if (head.chunked) return CHUNKED;
    return head.contentLength < 0 ? 0 : head.contentLength;
  }
}

export class ResponseDecoder extends Http1Decoder<ResponseHead> {
  protected readonly errorCode = 'SHUTTLE_E_HTTP_BAD_RESPONSE';
  private requestMethod = 'GET';

  /** The method of the request this response answers (HEAD responses have no body). */
  expectResponseTo(method: string): void {
    this.requestMethod = method;
  }

  protected parseHead(text: string, start: number, end: number): ResponseHead {
    return parseResponseHead(text, start, end, this.limits);
  }

  protected bodyLength(head: ResponseHead): number {
    if (responseHasNoBody(this.requestMethod, head.status)) return 0;
    if (head.chunked) return CHUNKED;
    return head.contentLength >= 0 ? head.contentLength : UNTIL_CLOSE;
  }
}
