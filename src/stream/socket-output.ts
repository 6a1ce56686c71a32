/**
 * What a codec writes to one socket during one event, sent as one write when the event is over.
 *
 * Why: an upstream read often completes a response head and body at once (HTTP/1), or several
 * streams' frames (HTTP/2); the stream layer encodes them as separate calls. Writing each at once
 * costs a syscall and a libuv request per piece. Collected here and flushed from a microtask (run
 * by Node right after the I/O callback that produced them returns, before any other read), they
 * leave in one `write()` of one joined Buffer (see joined-write.ts).
 *
 * Pieces may be views of a read buffer that is reused by the next read (`volatile`): the flush
 * happens before that read, and joined-write copies what the socket might keep.
 */
import type net from 'node:net';
import { writeJoined } from './joined-write.ts';

/** Outputs with pieces waiting, flushed together by one microtask (or at the end of a read batch). */
let waiting: SocketOutput[] = [];
let flushQueued = false;
/** Reads being handled now (see inBatch): their writes are flushed when the outermost returns. */
let batchDepth = 0;

function flushAll(): void {
  flushQueued = false;
  const outputs = waiting;
  waiting = [];
  for (const o of outputs) o.flush();
}

/**
 * Read handlers (decode one read, with everything the proxy writes because of it) run between
 * beginBatch() and endBatch(), which flushes what they wrote: the common path then costs no
 * microtask. Writes outside any read handler (timers, callbacks) go out through a microtask.
 */
export function beginBatch(): void {
  batchDepth++;
}

export function endBatch(): void {
  if (--batchDepth === 0 && waiting.length > 0 && !flushQueued) flushAll();
}

/** Reads of `socket` handled as a batch: what the handler writes leaves when it returns. */
export function onBatchedData(socket: net.Socket, handler: (chunk: Buffer) => void): void {
  socket.on('data', (chunk: Buffer) => {
    beginBatch();
    try {
      handler(chunk);
    } finally {
      endBatch();
    }
  });
}

export interface OutputOwner {
  /** Bytes left for the socket (the connection's tx counter). */
  onWritten(bytes: number): void;
  /** The socket's buffer went over its high-water mark with this flush ('drain' will follow). */
  onFull(): void;
}

export class SocketOutput {
  private readonly socket: net.Socket;
  private readonly owner: OutputOwner;
  private pieces: (string | Buffer)[] = [];
  private bytes = 0;
  private volatile = false;
  private queued = false;

  constructor(socket: net.Socket, owner: OutputOwner) {
    this.socket = socket;
    this.owner = owner;
  }

  /** Bytes waiting for this event's flush. */
  get pending(): number {
    return this.bytes;
  }

  /** Adds a latin1 string (a head) or bytes; `volatile`: a view of memory reused after this event. */
  push(piece: string | Buffer, volatile = false): void {
    if (piece.length === 0) return;
    this.pieces.push(piece);
    this.bytes += piece.length;
    if (volatile) this.volatile = true;
    if (!this.queued) {
      this.queued = true;
      waiting.push(this);
      if (!flushQueued && batchDepth === 0) {
        flushQueued = true;
        queueMicrotask(flushAll);
      }
    }
  }

  /** Writes what is waiting now (also used before ending the socket). */
  flush(): void {
    this.queued = false;
    if (this.bytes === 0) return;
    const pieces = this.pieces;
    const bytes = this.bytes;
    const volatile = this.volatile;
    this.pieces = [];
    this.bytes = 0;
    this.volatile = false;
    const socket = this.socket;
    if (socket.destroyed) return;
    this.owner.onWritten(bytes);
    if (!writeJoined(socket, pieces, bytes, volatile)) this.owner.onFull();
  }
}
