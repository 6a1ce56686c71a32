/**
 * HTTP/2 frame layout (RFC 9113 §4, §6): type and flag numbers, error codes, settings ids, and
 * frame writers. Frames are written as a 9-byte header plus payload pieces; the header is a latin1
 * string (one char per byte), which the socket output joins with the payload into one write
 * without allocating a Buffer per frame.
 */

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const Flag = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

export const ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

export const ERROR_NAMES = Object.fromEntries(Object.entries(ErrorCode).map(([k, v]) => [v, k])) as Record<number, string>;

export const Setting = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
export const FRAME_HEADER_BYTES = 9;
export const DEFAULT_WINDOW = 65_535;
export const MAX_WINDOW = 0x7fffffff;
export const DEFAULT_MAX_FRAME_SIZE = 16_384;

const chr = String.fromCharCode;

/** The 9-byte frame header as a latin1 string. */
export function frameHeader(length: number, type: number, flags: number, streamId: number): string {
  return chr((length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff, type, flags,
    (streamId >>> 24) & 0x7f, (streamId >>> 16) & 0xff, (streamId >>> 8) & 0xff, streamId & 0xff);
}

/** The 9-byte frame header written at buf[at]. */
export function writeFrameHeader(buf: Buffer, at: number, length: number, type: number, flags: number, streamId: number): void {
  buf[at] = (length >>> 16) & 0xff;
  buf[at + 1] = (length >>> 8) & 0xff;
  buf[at + 2] = length & 0xff;
  buf[at + 3] = type;
  buf[at + 4] = flags;
  buf[at + 5] = (streamId >>> 24) & 0x7f;
  buf[at + 6] = (streamId >>> 16) & 0xff;
  buf[at + 7] = (streamId >>> 8) & 0xff;
  buf[at + 8] = streamId & 0xff;
}

function u32(n: number): string {
  return chr((n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

export function settingsFrame(settings: readonly (readonly [number, number])[]): string {
  let payload = '';
  for (const [id, value] of settings) payload += chr((id >>> 8) & 0xff, id & 0xff) + u32(value);
  return frameHeader(payload.length, FrameType.SETTINGS, 0, 0) + payload;
}

export const SETTINGS_ACK = frameHeader(0, FrameType.SETTINGS, Flag.ACK, 0);

export function windowUpdateFrame(streamId: number, increment: number): string {
  return frameHeader(4, FrameType.WINDOW_UPDATE, 0, streamId) + u32(increment & 0x7fffffff);
}

export function rstStreamFrame(streamId: number, code: number): string {
  return frameHeader(4, FrameType.RST_STREAM, 0, streamId) + u32(code);
}

export function goAwayFrame(lastStreamId: number, code: number, debug = ''): string {
  const data = debug.slice(0, 256);
  return frameHeader(8 + data.length, FrameType.GOAWAY, 0, 0) + u32(lastStreamId & 0x7fffffff) + u32(code) + data;
}

/** A PING frame; `payload` is 8 bytes (latin1). */
export function pingFrame(payload: string, ack: boolean): string {
  return frameHeader(8, FrameType.PING, ack ? Flag.ACK : 0, 0) + payload;
}
