/**
 * A streaming scanner for chunked transfer coding (RFC 9112 §7.1). It finds where a chunked body
 * ends, so the proxy can forward the framing bytes untouched and still know the message boundary,
 * and reports payload ranges for when the body must be decoded (an HTTP/1.0 peer).
 *
 *   size [; ext] CRLF  data CRLF  …  0 CRLF  [trailer CRLF]…  CRLF
 *
 * Strict on purpose (request smuggling): hex digits only, at most 16 of them, CRLF only,
 * no obs-fold in trailers.
 */
import { HttpParseError, type HttpParseErrorCode } from './errors.ts';

const State = {
  Size: 0,
  SizeBws: 1,
  Ext: 2,
  SizeLf: 3,
  Data: 4,
  DataCr: 5,
  DataLf: 6,
  TrailerStart: 7,
  Trailer: 8,
  TrailerLf: 9,
  EndLf: 10,
  Done: 11,
} as const;

const CR = 13;
const LF = 10;
const MAX_SIZE_DIGITS = 16;
const MAX_LINE = 4096;
const MAX_TRAILER_BYTES = 16 * 1024;

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

export class ChunkedScanner {
  private state: number = State.Size;
  private size = 0;
  private digits = 0;
  private lineBytes = 0;
  private remaining = 0;
  private trailerBytes = 0;
  private trailerLine: number[] = [];
  /** Trailer fields, as [name, value, …]. */
  readonly trailers: string[] = [];
  /** Payload bytes seen so far (for body-size limits). */
  payloadBytes = 0;
  private readonly errorCode: HttpParseErrorCode;

  constructor(errorCode: HttpParseErrorCode = 'SHUTTLE_E_HTTP_BAD_REQUEST') {
    this.errorCode = errorCode;
  }

  get done(): boolean {
    return this.state === State.Done;
  }

  /**
   * Scans buf[start..end). Returns the index just past the end of the chunked body if it ends in
   * this range, else -1. `onData` receives payload ranges.
   */
  scan(buf: Buffer, start: number, end: number, onData?: (buf: Buffer, from: number, to: number) => void): number {
    let i = start;
    while (i < end) {
      const c = buf[i];
      switch (this.state) {
        case State.Size: {
          const h = hexValue(c);
          if (h >= 0) {
            if (++this.digits > MAX_SIZE_DIGITS) this.fail('chunk size has too many digits');
            this.size = this.size * 16 + h;
          } else if (this.digits === 0) {
            this.fail('invalid chunk size');
          } else if (c === CR) {
            this.state = State.SizeLf;
          } else if (c === 59 /* ; */) {
            this.state = State.Ext;
          } else if (c === 32 || c === 9) {
            this.state = State.SizeBws;
          } else {
            this.fail('invalid chunk size');
          }
          this.line();
          i++;
          break;
        }
        case State.SizeBws:
          if (c === 59) this.state = State.Ext;
          else if (c !== 32 && c !== 9) this.fail('invalid chunk size');
          this.line();
          i++;
          break;
        case State.Ext:
          if (c === CR) this.state = State.SizeLf;
          else if (c === LF || c === 0 || c === 127) this.fail('invalid chunk extension');
          this.line();
          i++;
          break;
        case State.SizeLf:
          if (c !== LF) this.fail('chunk size line must end with CRLF');
          i++;
          this.lineBytes = 0;
          this.digits = 0;
          if (this.size === 0) {
            this.state = State.TrailerStart;
          } else {
            if (!Number.isSafeInteger(this.size)) this.fail('chunk size too large');
            this.remaining = this.size;
            this.state = State.Data;
          }
          this.size = 0;
          break;
        case State.Data: {
          const take = Math.min(this.remaining, end - i);
          onData?.(buf, i, i + take);
          this.payloadBytes += take;
          this.remaining -= take;
          i += take;
          if (this.remaining === 0) this.state = State.DataCr;
          break;
        }
        case State.DataCr:
          if (c !== CR) this.fail('chunk data must be followed by CRLF');
          this.state = State.DataLf;
          i++;
          break;
        case State.DataLf:
          if (c !== LF) this.fail('chunk data must be followed by CRLF');
          this.state = State.Size;
          i++;
          break;
        case State.TrailerStart:
          if (c === CR) {
            this.state = State.EndLf;
          } else {
            if (c === 32 || c === 9) this.fail('obs-fold in trailer');
            this.state = State.Trailer;
            this.trailerLine = [c];
            this.trailerByte();
          }
          i++;
          break;
        case State.Trailer:
          if (c === CR) this.state = State.TrailerLf;
          else if (c === LF || c === 0) this.fail('invalid trailer');
          else this.trailerLine.push(c);
          this.trailerByte();
          i++;
          break;
        case State.TrailerLf: {
          if (c !== LF) this.fail('trailer must end with CRLF');
          const line = Buffer.from(this.trailerLine).toString('latin1');
          const colon = line.indexOf(':');
          if (colon <= 0 || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(line.slice(0, colon))) this.fail('invalid trailer field');
          // Trailers may be sent on as HTTP/2 trailers: the same value rules as header fields.
          if (/[\x00-\x08\x0a-\x1f\x7f]/.test(line)) this.fail('invalid character in a trailer');
          // Optional whitespace is SP and HTAB only (RFC 9110 §5.5): obs-text such as NBSP stays.
          this.trailers.push(line.slice(0, colon), line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, ''));
          this.state = State.TrailerStart;
          i++;
          break;
        }
        case State.EndLf:
          if (c !== LF) this.fail('chunked body must end with CRLF');
          this.state = State.Done;
          return i + 1;
        case State.Done:
          return i;
      }
    }
    return -1;
  }

  private line(): void {
    if (++this.lineBytes > MAX_LINE) this.fail('chunk size line too long');
  }

  private trailerByte(): void {
    if (++this.trailerBytes > MAX_TRAILER_BYTES) this.fail('trailers too large');
  }

  private fail(message: string): never {
    throw new HttpParseError(this.errorCode, message);
  }
}
