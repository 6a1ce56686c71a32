/**
 * FrameBuffer (src/codecs/frame-buffer.ts): undecoded bytes across reads, with frames decoded from
 * views that must stay intact, and linear copying for a frame arriving in many reads.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FrameBuffer } from '../src/codecs/frame-buffer.ts';

/** A toy length-prefixed codec: [u32 length][bytes]. */
function decodeAll(fb: FrameBuffer, chunk: Buffer, out: Buffer[], volatile = false): void {
  const buf = fb.append(chunk, volatile);
  let offset = 0;
  while (buf.length - offset >= 4) {
    const n = buf.readUInt32BE(offset);
    if (buf.length - offset < 4 + n) break;
    out.push(buf.subarray(offset + 4, offset + 4 + n)); // a view, kept as a proxy keeps frame.raw
    offset += 4 + n;
  }
  fb.consumed(offset);
}

function framed(payloads: Buffer[]): Buffer {
  return Buffer.concat(payloads.flatMap((p) => {
    const h = Buffer.alloc(4);
    h.writeUInt32BE(p.length);
    return [h, p];
  }));
}

describe('FrameBuffer', () => {
  it('reads through one shared buffer (onread): a frame split across reads survives the buffer being overwritten', () => {
    const payloads = Array.from({ length: 300 }, (_, i) => randomBytes(1 + ((i * 7919) % 5000)));
    const wire = framed(payloads);
    const shared = Buffer.alloc(64 * 1024);
    const fb = new FrameBuffer();
    const got: Buffer[] = [];
    for (let at = 0, i = 0; at < wire.length; i++) {
      const n = Math.min(1 + ((i * 131) % 4093), wire.length - at);
      shared.fill(0xee); // the next read overwrites whatever a previous one left
      wire.copy(shared, 0, at, at + n);
      const out: Buffer[] = [];
      decodeAll(fb, shared.subarray(0, n), out, true);
      got.push(...out.map((b) => Buffer.from(b))); // consumed before the next read, as a proxy does
      at += n;
    }
    expect(got.length).toBe(payloads.length);
    expect(got.every((b, i) => b.equals(payloads[i]))).toBe(true);
  });

  it('decodes frames split anywhere, and the views handed out are never overwritten', () => {
    const payloads = Array.from({ length: 200 }, (_, i) => randomBytes(1 + ((i * 7919) % 3000)));
    const wire = framed(payloads);
    const fb = new FrameBuffer();
    const out: Buffer[] = [];
    for (let at = 0, i = 0; at < wire.length; i++) {
      const n = 1 + ((i * 131) % 977); // odd read sizes
      decodeAll(fb, Buffer.from(wire.subarray(at, at + n)), out); // each read its own memory
      at += n;
    }
    expect(fb.pending).toBe(0);
    expect(out.length).toBe(payloads.length);
    // Checked at the end: later reads must not have written over earlier frames.
    out.forEach((b, i) => expect(b.equals(payloads[i])).toBe(true));
  });

  it('copies a large frame arriving in small reads a linear number of times', () => {
    const payload = randomBytes(4 * 1024 * 1024);
    const wire = framed([payload]);
    const fb = new FrameBuffer();
    const out: Buffer[] = [];
    const copied = { bytes: 0 };
    const realCopy = Buffer.prototype.copy;
    Buffer.prototype.copy = function (this: Buffer, ...args: Parameters<Buffer['copy']>) {
      const n = realCopy.apply(this, args);
      copied.bytes += n;
      return n;
    };
    try {
      for (let at = 0; at < wire.length; at += 16 * 1024) decodeAll(fb, wire.subarray(at, at + 16 * 1024), out);
    } finally {
      Buffer.prototype.copy = realCopy;
    }
    expect(out.length).toBe(1);
    expect(out[0].equals(payload)).toBe(true);
    // Concatenating per read would copy ~ n²/2 = 512 MiB here; doubling stays under 3× the frame.
    expect(copied.bytes).toBeLessThan(3 * wire.length);
  });
});
