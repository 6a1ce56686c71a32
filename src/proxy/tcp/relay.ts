/**
 * Bytes of an L4 session, one direction at a time: each read lands in the direction's own buffer
 * and is written straight to the other socket (net/socket-io.ts), with no Buffer, stream or pipe
 * per read. A write the kernel could not take at once keeps a pointer into that buffer, so the
 * direction stops reading until the write completes: that is also its backpressure, per
 * direction, with at most one buffer of bytes in flight.
 *
 * Buffers start at 16 KiB per direction (nginx's proxy_buffer_size) and double, up to 256 KiB,
 * while reads fill them (a bulk flow: fewer, larger reads and writes); they shrink back when reads
 * get small again, so a long-lived connection that went quiet does not keep 512 KiB.
 */
import type net from 'node:net';
import { available, readInto, switchBuffer, writeThrough, Written } from '../../net/socket-io.ts';

const MIN_BUFFER = 16 * 1024;
const MAX_BUFFER = 256 * 1024;

export class Direction {
  private readonly from: net.Socket;
  private readonly to: net.Socket;
  private readonly count: (bytes: number) => void;
  private buffer = Buffer.allocUnsafeSlow(MIN_BUFFER);
  /** A write of ours is in flight: `buffer` is not ours to read into. */
  private writing = false;
  /** Held (a migration): no reading, whatever completes. */
  private held = false;
  private readonly resume = () => {
    this.writing = false;
    if (!this.held) this.from.resume();
  };

  /** `count(bytes)` for each read (byte counters, activity for the idle timer). */
  constructor(from: net.Socket, to: net.Socket, count: (bytes: number) => void) {
    this.from = from;
    this.to = to;
    this.count = count;
  }

  /** Whether start() would succeed: a plain socket with the internals, and no bytes read before. */
  canStart(): boolean {
    return available(this.from) && available(this.to) && this.from.readableLength === 0;
  }

  /** Starts relaying (after canStart() said yes for both directions: a half-started pair could not fall back). */
  start(): void {
    if (!readInto(this.from, this.buffer, (bytes) => this.onRead(bytes))) throw new Error('relay: the socket cannot read into a buffer of ours (canStart() first)');
    // EOF: the other side's write half ends once what was written before is out (libuv keeps order).
    this.from.once('end', () => {
      if (!this.to.destroyed) this.to.end();
    });
    this.from.resume();
  }

  private onRead(bytes: number): void {
    this.count(bytes);
    const outcome = writeThrough(this.to, this.buffer.subarray(0, bytes), this.resume);
    if (outcome === Written.Pending) {
      this.writing = true;
      this.from.pause();
      return;
    }
    if (outcome === Written.Failed) return;
    // The buffer is free again: size it to the flow.
    if (bytes === this.buffer.length && bytes < MAX_BUFFER) this.resize(bytes * 2);
    else if (bytes < this.buffer.length / 8 && this.buffer.length > MIN_BUFFER) this.resize(MIN_BUFFER);
  }

  private resize(size: number): void {
    this.buffer = Buffer.allocUnsafeSlow(size);
    switchBuffer(this.from, this.buffer);
  }

  /** Stops reading (connection migration); what is in flight still completes. */
  hold(): void {
    this.held = true;
    this.from.pause();
  }

  /** Reads again after hold() (a migration rolled back). */
  release(): void {
    this.held = false;
    if (!this.writing) this.from.resume();
  }

  /** Bytes of ours not yet taken by the kernel: 0 or 1 writes. */
  get pendingWrites(): number {
    return this.writing ? 1 : 0;
  }
}
