/**
 * The socket floor under Node's stream API: reads into a buffer of our own and writes straight to
 * the handle. Measured on a 64-byte relay (../shared/reference/node26-perf.md): 18.6 µs of proxy
 * CPU per round trip through `'data'` and `write`, 9.7 with both of these.
 *
 * Why: a `'data'` read allocates a Buffer for every read (libuv's 64 KiB, then shrunk) and goes
 * through `push()` and a `maybeReadMore` tick. Node's `onread` option avoids that, but
 * `net.Server` does not pass it to accepted sockets (nodejs/node#53792); the socket's own fields
 * for it (found by their symbol descriptions) plus `handle.useUserBuffer()` switch any plain socket
 * to it between two reads. A write of a view of such a buffer must not outlive the next read:
 * `handle.writeBuffer(null, view)` says whether the kernel took it all (0) or keeps a pointer into
 * our memory (a pending request, whose completion we hear): the caller then reads nothing into
 * that buffer until the write completes.
 *
 * These are Node internals: they are feature-tested once (`available`); without them callers use
 * the stream API.
 */
import type net from 'node:net';
import { Socket } from 'node:net';
import { getSystemErrorName } from 'node:util';

type UserBufferSocket = net.Socket & Record<symbol, unknown>;

interface Handle {
  useUserBuffer?: (buffer: Uint8Array) => void;
  writeBuffer?: (req: null, data: Uint8Array) => number | PendingWrite;
}

interface PendingWrite {
  oncomplete: ((status: number) => void) | null;
  buffer: unknown;
}

/** The socket fields Node's `onread` option sets, by description (net.js: kBuffer, kBufferCb, kBufferGen). */
let symbols: { buffer: symbol; callback: symbol; generator: symbol } | null | undefined;

function findSymbols(socket: net.Socket): typeof symbols {
  if (symbols !== undefined) return symbols;
  const byName = new Map(Object.getOwnPropertySymbols(socket).map((s) => [s.description, s]));
  const buffer = byName.get('kBuffer');
  const callback = byName.get('kBufferCb');
  const generator = byName.get('kBufferGen');
  symbols = buffer && callback && generator ? { buffer, callback, generator } : null;
  return symbols;
}

const handleOf = (socket: net.Socket): Handle | undefined => (socket as unknown as { _handle?: Handle })._handle ?? undefined;

/** A plain TCP socket whose handle takes user buffers and direct writes (not TLS, not a pipe of ours). */
export function available(socket: net.Socket): boolean {
  const h = handleOf(socket);
  return !(socket as { encrypted?: boolean }).encrypted && typeof h?.useUserBuffer === 'function' && typeof h.writeBuffer === 'function' && findSymbols(socket) !== null;
}

/**
 * From now on the socket reads into `buffer`, calling `onRead(bytes)` for each read (the bytes are
 * `buffer[0, bytes)` until the next read); no `'data'` event is emitted. EOF still ends the
 * readable side (`'end'`). pause()/resume() stop and restart reading. Returns false, changing
 * nothing, if the socket cannot (see available()) or the stream holds bytes read before.
 */
export function readInto(socket: net.Socket, buffer: Buffer, onRead: (bytes: number) => void): boolean {
  if (!available(socket) || socket.readableLength > 0) return false;
  const s = socket as UserBufferSocket;
  const sym = symbols!;
  s[sym.generator] = null;
  s[sym.callback] = onRead; // (only a return of false would stop reading: no wrapper needed)
  switchBuffer(socket, buffer);
  return true;
}

/** Reads go into `buffer` from the next one on (a socket readInto() set up; between reads only). */
export function switchBuffer(socket: net.Socket, buffer: Buffer): void {
  (socket as UserBufferSocket)[symbols!.buffer] = buffer;
  handleOf(socket)!.useUserBuffer!(buffer);
}

/** What writeThrough() did. */
export const Written = {
  /** The kernel took every byte: the memory is ours again. */
  Done: 0,
  /** Some bytes wait (in libuv, pointing into the caller's memory, or in the stream): `onComplete` follows. */
  Pending: 1,
  /** The socket is closed or failed (it is destroyed with the error). */
  Failed: 2,
} as const;
export type Written = (typeof Written)[keyof typeof Written];

/**
 * Writes `data` to the socket's handle when nothing is queued in its stream (else through the
 * stream, as a copy, in order). `onComplete` is called once a Pending write is done; not for
 * Done or Failed.
 */
export function writeThrough(socket: net.Socket, data: Uint8Array, onComplete: () => void): Written {
  if (socket.destroyed || socket.writableEnded) return Written.Failed;
  const h = handleOf(socket);
  if (socket.writableLength > 0 || socket.connecting || typeof h?.writeBuffer !== 'function') {
    // The stream has bytes of its own queued: ours go behind them (a copy, as the stream keeps it).
    socket.write(Buffer.from(data), (err) => {
      if (!err) onComplete();
    });
    return Written.Pending;
  }
  const r = h.writeBuffer(null, data);
  if (r === 0) return Written.Done;
  if (typeof r === 'object' && r !== null) {
    r.buffer = data; // kept alive until libuv is done with it
    r.oncomplete = (status: number) => {
      if (status < 0) socket.destroy(errnoError(status, 'write'));
      else onComplete();
    };
    return Written.Pending;
  }
  socket.destroy(errnoError(r, 'write'));
  return Written.Failed;
}

function errnoError(status: number, syscall: string): NodeJS.ErrnoException {
  const code = getSystemErrorName(status);
  return Object.assign(new Error(`${syscall} ${code}`), { errno: status, code, syscall });
}

/**
 * A socket received from another thread, as a fresh `net.Socket` on the same handle, in the same
 * state (not reading, flowing undecided: a 'data' listener or resume() starts it).
 *
 * Why: Node rebuilds a transferred socket as a dictionary-mode object (its properties set one by
 * one through the V8 API), which holds ~2.4 KB of heap for the connection's life against ~1.1 KB
 * for a socket made here (measured with 4,000 idle connections): in handoff mode, every
 * connection. `manualStart` (Node's own option for sockets made on a handle) leaves it unread.
 * Without the handle field (Node internals changed), the received socket is used as it is.
 */
export function adoptTransferred(received: net.Socket): net.Socket {
  const handle = (received as unknown as { _handle?: unknown })._handle;
  if (handle === undefined || handle === null || received.readableLength > 0 || received.destroyed) return received;
  (received as unknown as { _handle: unknown })._handle = null;
  return new Socket({ handle, allowHalfOpen: received.allowHalfOpen, manualStart: true } as unknown as net.SocketConstructorOpts);
}
