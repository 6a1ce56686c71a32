/**
 * Bytes of a connection that are not decoded yet (the start of a frame still arriving), kept so
 * that a large frame arriving in many reads costs linear time: chunks are copied into spare
 * capacity that doubles as needed, instead of `Buffer.concat(pending, chunk)` per read (quadratic:
 * a 16 MiB frame in 64 KiB reads would copy ~2 GiB).
 *
 * Bytes handed out (frames decoded from a view) are never written again: growing allocates a new
 * buffer and copies only what is still undecoded, so views held by in-flight calls stay intact.
 */
/** Nothing pending (shared: a read that decodes whole costs no allocation here). */
const EMPTY = Buffer.alloc(0);

/**
 * A copy of `view` in memory of its own: for a frame decoded from a read buffer that the next
 * read overwrites, when the frame must outlive the read (see proxy/rpc/rpc-connection.ts).
 */
export function copyOut(view: Buffer): Buffer {
  const own = Buffer.allocUnsafe(view.length);
  view.copy(own, 0);
  return own;
}

export class FrameBuffer {
  private buf: Buffer = EMPTY;
  private start = 0;
  private end = 0;

  /** `buf` is a view of a read buffer that the next read overwrites (Node's `onread`). */
  private borrowed = false;

  /**
   * Adds a read; returns the undecoded bytes (a view, valid until the next append). `volatile`:
   * the chunk is a shared read buffer; what is left undecoded is copied out at consumed().
   */
  append(chunk: Buffer, volatile = false): Buffer {
    if (this.start === this.end) {
      // Nothing pending: decode straight from the read, no copy.
      this.buf = chunk;
      this.start = 0;
      this.end = chunk.length;
      this.borrowed = volatile;
      return chunk;
    }
    const pending = this.end - this.start;
    // Spare room past `end` exists only in a buffer allocated here (a read is exactly its bytes).
    if (this.buf.length - this.end < chunk.length) {
      const grown = Buffer.allocUnsafe(Math.max(2 * (pending + chunk.length), 4096));
      this.buf.copy(grown, 0, this.start, this.end);
      this.buf = grown;
      this.start = 0;
      this.end = pending;
    }
    chunk.copy(this.buf, this.end);
    this.end += chunk.length;
    return this.buf.subarray(this.start, this.end);
  }

  /** `n` bytes from the front were decoded (and may be referenced from now on). */
  consumed(n: number): void {
    this.start += n;
    if (this.start === this.end) {
      this.buf = EMPTY;
      this.start = this.end = 0;
      this.borrowed = false;
    } else if (this.borrowed) {
      // The start of a frame, in a buffer the next read overwrites: ours now.
      const pending = this.end - this.start;
      const own = Buffer.allocUnsafe(Math.max(2 * pending, 4096));
      this.buf.copy(own, 0, this.start, this.end);
      this.buf = own;
      this.start = 0;
      this.end = pending;
      this.borrowed = false;
    }
  }

  get pending(): number {
    return this.end - this.start;
  }

  /** A copy of the undecoded bytes (they travel with a migrated connection). */
  copyPending(): Buffer {
    return Buffer.from(this.buf.subarray(this.start, this.end));
  }
}
