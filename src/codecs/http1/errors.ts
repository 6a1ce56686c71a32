/**
 * Parse errors of the HTTP/1.1 codec, each with the status a proxy answers with and a stable code.
 */
export const HTTP_PARSE_ERRORS = {
  SHUTTLE_E_HTTP_BAD_REQUEST: 400,
  SHUTTLE_E_HTTP_HEADERS_TOO_LARGE: 431,
  SHUTTLE_E_HTTP_BODY_TOO_LARGE: 413,
  SHUTTLE_E_HTTP_VERSION: 505,
  SHUTTLE_E_HTTP_BAD_RESPONSE: 502,
} as const;

export type HttpParseErrorCode = keyof typeof HTTP_PARSE_ERRORS;

export class HttpParseError extends Error {
  readonly code: HttpParseErrorCode;
  readonly status: number;
  constructor(code: HttpParseErrorCode, message: string) {
    super(message);
    this.name = 'HttpParseError';
    this.code = code;
    this.status = HTTP_PARSE_ERRORS[code];
  }
}
