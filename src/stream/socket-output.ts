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
 *
 * A codec that builds small binary pieces (HTTP/2 frame headers, header blocks, small DATA) writes
 * them in place instead (`reserve()`): into a staging buffer borrowed from a per-thread free list
 * for the event, so they cost no Buffer, string or join copy of their own. An event that staged
 * everything leaves as one write straight from the staging buffer. The buffer goes back to the
 * list once the kernel took the write whole (the socket keeps no reference to it), so an idle
 * connection holds none.
 */
import type net from 'node:net';
import { readInto } from '../net/socket-io.ts';
import { holdClock } from './clock.ts';
import { writeJoined } from './joined-write.ts';

/**
 * Outputs with pieces waiting (`waiting[0, waitingCount)`), flushed together by one microtask (or
 * at the end of a read batch).
 *
 * Lists here are reused, their entries counted, not truncated: a new array per flush (or a
 * `length = 0`, which drops the array's storage in V8) was ~180 bytes twice per proxied HTTP/1.1
 * request. The list flushed last time, its slots cleared, is the next `waiting` (taken while
 * flushing: a flush re-entered meanwhile makes a new one).
 */
let waiting: (SocketOutput | undefined)[] = [];
let waitingCount = 0;
let spareWaiting: (SocketOutput | undefined)[] | undefined = [];
let flushQueued = false;
/** Reads being handled now (see inBatch): their writes are flushed when the outermost returns. */
let batchDepth = 0;

function flushAll(): void {
  flushQueued = false;
  const outputs = waiting;
  const n = waitingCount;
  waiting = spareWaiting ?? [];
  waitingCount = 0;
  spareWaiting = undefined;
  for (let i = 0; i < n; i++) {
    const o = outputs[i]!;
    outputs[i] = undefined;
    o.flushOrDefer();
  }
  spareWaiting = outputs;
}

/** Coalescing outputs with pieces waiting for the end of this event-loop iteration. */
let deferred: SocketOutput[] = [];
let deferredQueued = false;

function flushDeferred(): void {
  deferredQueued = false;
  const outputs = deferred;
  deferred = [];
  for (const o of outputs) o.flush();
}

/**
 * Read handlers (decode one read, with everything the proxy writes because of it) run between
 * beginBatch() and endBatch(), which flushes what they wrote: the common path then costs no
 * microtask. Writes outside any read handler (timers, callbacks) go out through a microtask.
 */
export function beginBatch(): void {
  if (batchDepth++ === 0) holdClock(true);
}

export function endBatch(): void {
  if (--batchDepth !== 0) return;
  holdClock(false);
  if (waitingCount > 0 && !flushQueued) flushAll();
}

/**
 * Reads of `socket` into the thread's `buffer` (net/socket-io.ts readInto: no Buffer and no stream
 * work per read), each handled as a batch; the chunk is a view of `buffer`, reused by the next
 * read. False when the socket cannot (TLS, Node's internals missing): use onBatchedData.
 */
export function onBatchedSharedReads(socket: net.Socket, buffer: Buffer, handler: (chunk: Buffer) => void): boolean {
  return readInto(socket, buffer, (bytes) => {
    beginBatch();
    try {
      handler(buffer.subarray(0, bytes));
    } finally {
      endBatch();
    }
  });
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

/** The shared empty list of outputs with nothing pushed (never pushed to). */
const NO_PIECES: (string | Buffer | undefined)[] = [];

/**
 * Piece lists not lent to any output: an output takes one at its first push of an event and gives
 * it back when it flushes, its slots cleared (an idle connection holds none; no new array per
 * event; counted, not truncated, as `waiting` is).
 */
const freePieceLists: (string | Buffer | undefined)[][] = [];
const PIECE_LISTS_KEPT = 64;

function givePieceList(list: (string | Buffer | undefined)[], count: number): void {
  for (let i = 0; i < count; i++) list[i] = undefined;
  if (freePieceLists.length < PIECE_LISTS_KEPT) freePieceLists.push(list);
}

/** Staging buffers not lent to any output (reused: an output borrows one per event). */
const STAGE_BYTES = 16 * 1024;
const STAGES_KEPT = 32;
const freeStages: Buffer[] = [];

export interface OutputOwner {
  /** Bytes left for the socket (the connection's tx counter). */
  onWritten(bytes: number): void;
  /** The socket's buffer went over its high-water mark with this flush ('drain' will follow). */
  onFull(): void;
}

export interface OutputOptions {
  /**
   * A connection that many others write to (an HTTP/2 upstream connection): what the reads of one
   * event-loop iteration write to it leaves in one write once they are all handled (setImmediate),
   * instead of one write per read. Pieces that are views of a read buffer (`volatile`) are
   * flushed at the end of their read, as on any output. Measured (bench/RESULTS.md): 21% fewer
   * writes on HTTP/2 at equal CPU (p99 lower in A/B runs, not in full runs); on an RPC upstream fed
   * by one client, 3–9% more CPU per call (the extra loop turn), so RPC pools do not coalesce.
   */
  coalesce?: boolean;
}

export class SocketOutput {
  private readonly socket: net.Socket;
  private readonly owner: OutputOwner;
  private readonly coalesce: boolean;
  /** Waiting in `deferred` for the end of the iteration. */
  private isDeferred = false;
  /** NO_PIECES until the first push of an event (an idle connection holds no array). */
  private pieces: (string | Buffer | undefined)[] = NO_PIECES;
  /** Pieces in `pieces` (its slots past this are undefined). */
  private pieceCount = 0;
  private bytes = 0;
  private volatile = false;
  private queued = false;
  /** Staging buffer lent for this event; bytes [stageFrom, stageUsed) are staged and not yet in `pieces`. */
  private stage: Buffer | undefined;
  private stageFrom = 0;
  private stageUsed = 0;

  constructor(socket: net.Socket, owner: OutputOwner, opts?: OutputOptions) {
    this.socket = socket;
    this.owner = owner;
    this.coalesce = opts?.coalesce === true;
  }

  /** Bytes waiting for this event's flush. */
  get pending(): number {
    return this.bytes;
  }

  /** Adds a latin1 string (a head) or bytes; `volatile`: a view of memory reused after this event. */
  push(piece: string | Buffer, volatile = false): void {
    if (piece.length === 0) return;
    if (this.stageUsed > this.stageFrom) this.closeStaged();
    this.addPiece(piece);
    this.bytes += piece.length;
    if (volatile) this.volatile = true;
    this.enqueue();
  }

  /**
   * Room for `n` bytes written in place, in order after everything pushed so far: the caller fills
   * `this.staged` at the returned offset before anything else is pushed. `n` ≤ 16 KiB.
   */
  reserve(n: number): number {
    let stage = this.stage;
    if (stage === undefined || this.stageUsed + n > stage.length) {
      if (stage !== undefined && this.stageUsed > this.stageFrom) this.closeStaged();
      // (A stage that was partly sent as a piece stays with that piece: not returned to the list.)
      stage = this.stage = (n <= STAGE_BYTES ? freeStages.pop() : undefined) ?? Buffer.allocUnsafeSlow(Math.max(STAGE_BYTES, n));
      this.stageFrom = this.stageUsed = 0;
    }
    const at = this.stageUsed;
    this.stageUsed = at + n;
    this.bytes += n;
    this.enqueue();
    return at;
  }

  /** The staging buffer that reserve()'s offsets point into. */
  get staged(): Buffer {
    return this.stage!;
  }

  /** Copies `src[start, end)` in (small pieces: their own Buffer would cost more than the copy). */
  pushCopy(src: Buffer, start: number, end: number): void {
    if (end <= start) return;
    const at = this.reserve(end - start);
    src.copy(this.stage!, at, start, end);
  }

  private enqueue(): void {
    if (this.queued) return;
    this.queued = true;
    waiting[waitingCount++] = this;
    if (!flushQueued && batchDepth === 0) {
      flushQueued = true;
      queueMicrotask(flushAll);
    }
  }

  /** Appends to this event's pieces (a list taken from the free ones at the first). */
  private addPiece(piece: string | Buffer): void {
    if (this.pieces === NO_PIECES) this.pieces = freePieceLists.pop() ?? [];
    this.pieces[this.pieceCount++] = piece;
  }

  /** The staged bytes so far become a piece (something else is pushed after them). */
  private closeStaged(): void {
    this.addPiece(this.stage!.subarray(this.stageFrom, this.stageUsed));
    this.stageFrom = this.stageUsed;
  }

  /** The end of a read batch (or of a microtask): write now, or at the end of the iteration. */
  flushOrDefer(): void {
    if (!this.coalesce || this.volatile || this.bytes === 0) return this.flush();
    this.queued = false;
    if (this.isDeferred) return;
    this.isDeferred = true;
    deferred.push(this);
    if (!deferredQueued) {
      deferredQueued = true;
      setImmediate(flushDeferred);
    }
  }

  /** Writes what is waiting now (also used before ending the socket). */
  flush(): void {
    this.queued = false;
    this.isDeferred = false;
    if (this.bytes === 0) return;
    const bytes = this.bytes;
    const volatile = this.volatile;
    const stage = this.stage;
    this.bytes = 0;
    this.volatile = false;
    const socket = this.socket;
    if (socket.destroyed) {
      if (this.pieces !== NO_PIECES) givePieceList(this.pieces, this.pieceCount);
      this.pieces = NO_PIECES;
      this.pieceCount = 0;
      this.stage = undefined;
      this.stageFrom = this.stageUsed = 0;
      if (stage !== undefined && freeStages.length < STAGES_KEPT) freeStages.push(stage);
      return;
    }
    this.owner.onWritten(bytes);
    let ok: boolean;
    if (this.pieceCount === 0) {
      // Everything was staged: one write from the staging buffer itself.
      ok = socket.write(stage!.subarray(this.stageFrom, this.stageUsed));
    } else {
      if (stage !== undefined && this.stageUsed > this.stageFrom) this.closeStaged();
      const pieces = this.pieces;
      const count = this.pieceCount;
      this.pieces = NO_PIECES;
      this.pieceCount = 0;
      ok = writeJoined(socket, pieces as readonly (string | Buffer)[], count, bytes, volatile);
      givePieceList(pieces, count); // (writeJoined keeps the pieces, never the list)
    }
    this.stage = undefined;
    this.stageFrom = this.stageUsed = 0;
    // The kernel took it all: nothing refers to the staging buffer any more.
    if (stage !== undefined && socket.writableLength === 0 && freeStages.length < STAGES_KEPT) freeStages.push(stage);
    if (!ok) this.owner.onFull();
  }
}
