/**
 * Parse errors of the HTTP/1.1 codec: a ShuttleError whose code (and so its status) says what was
 * wrong with the bytes. The status of each code is in the registry (src/errors.ts).
 */
import { ERRORS, ShuttleError } from '../../errors.ts';

export type HttpParseErrorCode =
  | 'SHUTTLE_E_HTTP_BAD_REQUEST'
  | 'SHUTTLE_E_HTTP_HEADERS_TOO_LARGE'
  | 'SHUTTLE_E_HTTP_URI_TOO_LONG'
  | 'SHUTTLE_E_HTTP_BODY_TOO_LARGE'
  | 'SHUTTLE_E_HTTP_VERSION'
  | 'SHUTTLE_E_HTTP_HEADERS_TIMEOUT'
  | 'SHUTTLE_E_HTTP_BAD_RESPONSE';

export class HttpParseError extends ShuttleError {
  declare readonly code: HttpParseErrorCode;
  readonly status: number;
  constructor(code: HttpParseErrorCode, message: string) {
    super(code, code === 'SHUTTLE_E_HTTP_BAD_RESPONSE' ? 'upstream' : 'downstream', message);
    this.name = 'HttpParseError';
    this.status = ERRORS[code].http;
  }
}
