/**
 * A single-producer/single-consumer ring of variable-length records over a SharedArrayBuffer.
 * Records are msgpackr-encoded values, each framed by a 4-byte length.
 *
 *   header (Int32Array):  [ head | tail | dropped | capacity ]
 *   data (Uint8Array):    capacity bytes, a power of two; a record may wrap past the end
 *
 *   producer: write record at tail ─▶ Atomics.store(tail) ─▶ Atomics.notify(tail)
 *   consumer: Atomics.load(tail) ─▶ read records up to it ─▶ Atomics.store(head)
 *
 * head and tail are free-running 32-bit byte counters; `tail - head` (mod 2^32) is the bytes in
 * use, so full and empty are never confused and no slot is wasted.
 *
 * A full ring drops the record and counts it (`dropped`): the producer is a worker serving
 * traffic, and it must never block on a slow consumer. What travels here are events whose loss is
 * tolerable and visible (the drop counter is exported); totals live in the shared tables. A record
 * larger than the ring can never fit, so it throws RingRecordTooLarge.
 */
import { Packr } from 'msgpackr';

const HEAD = 0;
const TAIL = 1;
const DROPPED = 2;
const CAPACITY = 3;
const HEADER_BYTES = 16;
const LENGTH_BYTES = 4;

const packr = new Packr({ useRecords: false, moreTypes: false });

export class RingRecordTooLarge extends RangeError {
  readonly code = 'SHUTTLE_E_RING_RECORD_TOO_LARGE';
  constructor(bytes: number, capacity: number) {
    super(`a ring record of ${bytes} bytes (with its 4-byte length) cannot fit a ring of ${capacity} bytes`);
  }
}

export class Ring {
  readonly buffer: SharedArrayBuffer;
  readonly capacity: number;
  private readonly header: Int32Array;
  private readonly data: Uint8Array;
  private readonly view: DataView;
  private readonly mask: number;

  constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    this.header = new Int32Array(buffer, 0, HEADER_BYTES / 4);
    this.capacity = Atomics.load(this.header, CAPACITY);
    this.data = new Uint8Array(buffer, HEADER_BYTES, this.capacity);
    this.view = new DataView(buffer, HEADER_BYTES, this.capacity);
    this.mask = this.capacity - 1;
  }

  /** `capacity` is rounded up to a power of two (at least 64 bytes). */
  static create(capacity: number): Ring {
    let size = 64;
    while (size < capacity) size *= 2;
    const buffer = new SharedArrayBuffer(HEADER_BYTES + size);
    Atomics.store(new Int32Array(buffer, 0, HEADER_BYTES / 4), CAPACITY, size);
    return new Ring(buffer);
  }

  /** Bytes in use. */
  get used(): number {
    return (Atomics.load(this.header, TAIL) - Atomics.load(this.header, HEAD)) >>> 0;
  }

  /** Records dropped because the ring was full. */
  get dropped(): number {
    return Atomics.load(this.header, DROPPED);
  }

  /** Producer side. Encodes and appends `value`; false (and counted) if the ring is full. */
  push(value: unknown): boolean {
    return this.pushBytes(packr.pack(value));
  }

  pushBytes(payload: Uint8Array): boolean {
    const need = LENGTH_BYTES + payload.length;
    if (need > this.capacity) throw new RingRecordTooLarge(need, this.capacity);
    const tail = Atomics.load(this.header, TAIL) >>> 0;
    const head = Atomics.load(this.header, HEAD) >>> 0;
    if (this.capacity - ((tail - head) >>> 0) < need) {
      Atomics.add(this.header, DROPPED, 1);
      return false;
    }
    this.writeLength(tail, payload.length);
    this.copyIn(payload, (tail + LENGTH_BYTES) >>> 0);
    // The store publishes the bytes above: Atomics orders them before the consumer's load.
    Atomics.store(this.header, TAIL, (tail + need) | 0);
    Atomics.notify(this.header, TAIL);
    return true;
  }

  /**
   * Producer side, for threads that may block (not a serving event loop): waits up to timeoutMs
   * for room instead of dropping. Returns false (counted as a drop) if there is still no room.
   */
  pushBlocking(value: unknown, timeoutMs: number): boolean {
    const payload = packr.pack(value);
    const need = LENGTH_BYTES + payload.length;
    if (need > this.capacity) throw new RingRecordTooLarge(need, this.capacity);
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const head = Atomics.load(this.header, HEAD);
      const free = this.capacity - ((Atomics.load(this.header, TAIL) - head) >>> 0);
      const left = deadline - performance.now();
      if (free >= need || left <= 0) return this.pushBytes(payload);
      Atomics.wait(this.header, HEAD, head, left);
    }
  }

  /** Consumer side. The next record, decoded, or undefined when the ring is empty. */
  shift(): unknown {
    const head = Atomics.load(this.header, HEAD) >>> 0;
    const tail = Atomics.load(this.header, TAIL) >>> 0;
    if (head === tail) return undefined;
    const length = this.readLength(head);
    const start = (head + LENGTH_BYTES) & this.mask;
    // Decode in place when the record does not wrap: one copy fewer than shiftBytes().
    const value = start + length <= this.capacity ? packr.unpack(this.data.subarray(start, start + length)) : packr.unpack(this.readWrapped(start, length));
    Atomics.store(this.header, HEAD, (head + LENGTH_BYTES + length) | 0);
    return value;
  }

  shiftBytes(): Uint8Array | undefined {
    const head = Atomics.load(this.header, HEAD) >>> 0;
    const tail = Atomics.load(this.header, TAIL) >>> 0;
    if (head === tail) return undefined;
    const length = this.readLength(head);
    const out = this.readWrapped((head + LENGTH_BYTES) & this.mask, length);
    Atomics.store(this.header, HEAD, (head + LENGTH_BYTES + length) | 0);
    return out;
  }

  /** Consumer side: hands every waiting record to `fn`; returns how many. */
  drain(fn: (value: unknown) => void): number {
    let n = 0;
    while (Atomics.load(this.header, HEAD) !== Atomics.load(this.header, TAIL)) {
      fn(this.shift());
      n++;
    }
    // One wake-up per batch for a producer blocked in pushBlocking (free when nobody waits).
    if (n > 0) Atomics.notify(this.header, HEAD);
    return n;
  }

  /** Consumer side, for event loops: resolves when a record may be waiting (or after timeoutMs). */
  async waitAsync(timeoutMs: number): Promise<void> {
    const tail = Atomics.load(this.header, TAIL);
    if (tail !== Atomics.load(this.header, HEAD)) return;
    const r = Atomics.waitAsync(this.header, TAIL, tail, timeoutMs);
    if (r.async) await r.value;
  }

  /** Consumer side, for threads that may block: waits until a record may be waiting. */
  waitSync(timeoutMs: number): void {
    const tail = Atomics.load(this.header, TAIL);
    if (tail !== Atomics.load(this.header, HEAD)) return;
    Atomics.wait(this.header, TAIL, tail, timeoutMs);
  }

  /**
   * Consumer loop for an event loop: drains, then sleeps on the tail until the producer notifies.
   * Stops when `signal` aborts.
   */
  async consume(fn: (value: unknown) => void, signal: AbortSignal, idleWakeMs = 1_000): Promise<void> {
    while (!signal.aborted) {
      this.drain(fn);
      await this.waitAsync(idleWakeMs);
    }
  }

  private writeLength(at: number, length: number): void {
    if ((at & this.mask) + LENGTH_BYTES <= this.capacity) this.view.setUint32(at & this.mask, length);
    else for (let i = 0; i < LENGTH_BYTES; i++) this.data[(at + i) & this.mask] = (length >>> (24 - 8 * i)) & 0xff;
  }

  private readLength(at: number): number {
    if ((at & this.mask) + LENGTH_BYTES <= this.capacity) return this.view.getUint32(at & this.mask);
    let length = 0;
    for (let i = 0; i < LENGTH_BYTES; i++) length = (length << 8) | this.data[(at + i) & this.mask];
    return length >>> 0;
  }

  private copyIn(src: Uint8Array, at: number): void {
    const start = at & this.mask;
    const first = Math.min(src.length, this.capacity - start);
    this.data.set(src.subarray(0, first), start);
    if (first < src.length) this.data.set(src.subarray(first), 0);
  }

  /** A copy of `length` bytes from data offset `start`, which may wrap past the end. */
  private readWrapped(start: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    const first = Math.min(length, this.capacity - start);
    out.set(this.data.subarray(start, start + first));
    if (first < length) out.set(this.data.subarray(0, length - first), first);
    return out;
  }
}
