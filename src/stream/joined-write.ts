/**
 * Writes the pieces one event produced for a socket (a rewritten head and the body bytes that came
 * with it) as one Buffer in one `write()`.
 *
 * Why: a corked string + Buffer write goes through Writable's buffered list, `writev` with a
 * chunk array, and a C++ copy of each string into freshly allocated storage. Measured on the HTTP
 * proxy path that cost more CPU than the proxy's own parsing and routing. One Buffer goes straight
 * to `uv_try_write` from its own memory.
 *
 * Small messages are assembled in one reusable slab per thread. The slab is reused only when the
 * kernel took the whole write synchronously (`writableLength` back at 0): a write that had to be
 * queued keeps a reference to it, so the next message gets a fresh slab. Large messages are not
 * copied: they are written piece by piece under cork (writev), where the copy would cost more than
 * the call overhead it saves, unless the pieces are views of a read buffer that will be reused
 * (`volatile`): what a socket may keep must be ours.
 */
import type net from 'node:net';

/** Pieces at most this large in total are copied into the slab. */
const JOIN_LIMIT = 16 * 1024;
const SLAB_BYTES = 64 * 1024;

type Latin1Buffer = Buffer & { latin1Write(s: string, offset: number): number };

let slab = Buffer.allocUnsafeSlow(SLAB_BYTES) as Latin1Buffer;

function join(into: Latin1Buffer, pieces: readonly (string | Buffer)[], count: number): number {
  let at = 0;
  for (let i = 0; i < count; i++) {
    const p = pieces[i];
    if (typeof p === 'string') at += into.latin1Write(p, at);
    else {
      into.set(p, at);
      at += p.length;
    }
  }
  return at;
}

/**
 * Writes `pieces[0, count)` (latin1 strings and Buffers, `bytes` in total) in order; returns what
 * `socket.write` returned (false: the socket's buffer is over its high-water mark).
 * `volatile`: the Buffers are views of memory that is reused after this call; they are copied.
 */
export function writeJoined(socket: net.Socket, pieces: readonly (string | Buffer)[], count: number, bytes: number, volatile = false): boolean {
  if (!volatile && count === 1) {
    const only = pieces[0];
    if (typeof only !== 'string') return socket.write(only);
  }
  if (bytes > JOIN_LIMIT && !volatile) {
    socket.cork();
    let ok = true;
    for (let i = 0; i < count; i++) {
      const p = pieces[i];
      ok = (typeof p === 'string' ? socket.write(p, 'latin1') : socket.write(p)) && ok;
    }
    socket.uncork();
    return ok;
  }
  if (bytes > JOIN_LIMIT || socket.writableLength > 0) {
    // Large, or queued behind earlier bytes (so kept): a buffer of its own.
    const own = Buffer.allocUnsafe(bytes) as Latin1Buffer;
    return socket.write(own.subarray(0, join(own, pieces, count)));
  }
  const ok = socket.write(slab.subarray(0, join(slab, pieces, count)));
  if (socket.writableLength !== 0) slab = Buffer.allocUnsafeSlow(SLAB_BYTES) as Latin1Buffer;
  return ok;
}
