/**
 * SocketOutput over a real loopback connection: staged bytes (reserve/pushCopy), pushed pieces
 * and strings leave in order; a staging buffer still referenced by a queued write is never reused
 * (the bytes a slow reader finally reads are the ones written); a flush on a destroyed socket
 * leaves the output usable. HTTP/1.1 heads written in place read as the same head built as a string.
 */
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { fieldLines, STAGED_BODY_BYTES, writeRequestHead, writeResponseHead } from '../src/codecs/http1/head-writer.ts';
import { beginBatch, endBatch, SocketOutput } from '../src/stream/socket-output.ts';
import { FUZZ_SEED } from './support/fuzz.ts';

const opened: net.Socket[] = [];
let server: net.Server | undefined;

afterEach(() => {
  for (const s of opened.splice(0)) s.destroy();
  server?.close();
  server = undefined;
});

/** A connected pair: `writer` (ours) and `reader` (the peer), paused until read. */
async function pair(): Promise<{ writer: net.Socket; reader: net.Socket }> {
  const accepted = new Promise<net.Socket>((resolve) => {
    server = net.createServer({ pauseOnConnect: true }, resolve);
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const writer = net.connect((server!.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise((resolve) => writer.once('connect', resolve));
  const reader = await accepted;
  opened.push(writer, reader);
  return { writer, reader };
}

function readAll(reader: net.Socket, bytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    reader.on('data', (c: Buffer) => {
      chunks.push(c);
      got += c.length;
      if (got >= bytes) resolve(Buffer.concat(chunks));
    });
    reader.once('error', reject);
    reader.resume();
  });
}

const owner = { onWritten() {}, onFull() {} };

/** One event's output: staged, pushed and copied pieces of `piece`, interleaved. */
function writeEvent(out: SocketOutput, piece: Buffer): void {
  const third = Math.floor(piece.length / 3);
  const at = out.reserve(third);
  piece.copy(out.staged, at, 0, third);
  out.push(piece.subarray(third, 2 * third));
  out.pushCopy(piece, 2 * third, piece.length);
}

describe('SocketOutput', () => {
  it('sends staged, pushed and copied pieces in order, one event after another', async () => {
    const { writer, reader } = await pair();
    const out = new SocketOutput(writer, owner);
    const expected: Buffer[] = [];
    for (let i = 0; i < 200; i++) {
      const piece = randomBytes(30 + (i % 50));
      expected.push(piece);
      beginBatch();
      writeEvent(out, piece);
      out.push('|', false);
      endBatch();
      expected.push(Buffer.from('|'));
    }
    const want = Buffer.concat(expected);
    expect((await readAll(reader, want.length)).equals(want)).toBe(true);
  });

  it('never reuses a staging buffer that a queued write still points into (slow reader)', async () => {
    const { writer, reader } = await pair();
    const out = new SocketOutput(writer, owner);
    const hash = createHash('sha256');
    let total = 0;
    // Far more than the socket buffers hold while the reader is paused: later writes queue in
    // Node, pointing into staging buffers; a reused one would change bytes already queued.
    for (let i = 0; i < 3000; i++) {
      const piece = randomBytes(3000);
      hash.update(piece);
      total += piece.length;
      beginBatch();
      const at = out.reserve(piece.length);
      piece.copy(out.staged, at);
      endBatch();
    }
    expect(writer.writableLength).toBeGreaterThan(0);
    const got = await readAll(reader, total);
    expect(got.length).toBe(total);
    expect(createHash('sha256').update(got).digest('hex')).toBe(hash.digest('hex'));
  });

  it('takes a block larger than a staging buffer', async () => {
    const { writer, reader } = await pair();
    const out = new SocketOutput(writer, owner);
    const big = randomBytes(40_000);
    beginBatch();
    out.pushCopy(big, 0, 100);
    const at = out.reserve(big.length - 100);
    big.copy(out.staged, at, 100);
    endBatch();
    expect((await readAll(reader, big.length)).equals(big)).toBe(true);
  });

  it('stays usable after a flush on a destroyed socket (regression: a staged range outlived its buffer)', async () => {
    const { writer } = await pair();
    const out = new SocketOutput(writer, owner);
    beginBatch();
    out.pushCopy(Buffer.from('lost'), 0, 4);
    writer.destroy();
    endBatch();
    beginBatch();
    expect(() => {
      out.pushCopy(Buffer.from('also lost'), 0, 9);
      out.push(Buffer.from('a piece after it'));
    }).not.toThrow();
    endBatch();
    expect(out.pending).toBe(0);
  });

  it('coalesces the batches of one event-loop iteration into one write, unless a piece is volatile', async () => {
    const { writer, reader } = await pair();
    const writes: number[] = [];
    const write = writer.write.bind(writer) as (chunk: Uint8Array) => boolean;
    (writer as unknown as { write: (chunk: Uint8Array) => boolean }).write = (chunk) => {
      writes.push(chunk.length);
      return write(chunk);
    };
    const out = new SocketOutput(writer, owner, { coalesce: true });
    // Three reads handled in one iteration, each writing to the shared output.
    for (const text of ['aa', 'bbb', 'cccc']) {
      beginBatch();
      out.push(Buffer.from(text));
      endBatch();
    }
    expect(writes).toEqual([]); // (still waiting for the end of the iteration)
    await new Promise((r) => setImmediate(r));
    expect(writes).toEqual([9]);
    // A view of a read buffer cannot wait: flushed at the end of its batch, with what came before.
    beginBatch();
    out.push(Buffer.from('dd'));
    endBatch();
    beginBatch();
    out.push(Buffer.from('eee'), true);
    endBatch();
    expect(writes).toEqual([9, 5]);
    await new Promise((r) => setImmediate(r));
    expect(writes).toEqual([9, 5]);
    expect((await readAll(reader, 14)).toString()).toBe('aabbbccccddeee');
  });
});

describe('HTTP/1.1 heads written in place (codecs/http1/head-writer.ts)', () => {
  it('writes the bytes the head as one latin1 string would be, connection fields left out', async () => {
    const { writer, reader } = await pair();
    const out = new SocketOutput(writer, owner);
    // Names with connection fields among them; values with latin1 bytes over 0x7f and empty ones.
    const name = fc.constantFrom('server', 'date', 'x-a', 'connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'set-cookie', 'te');
    const value = fc.string({ unit: fc.integer({ min: 0x20, max: 0xff }).map((c) => String.fromCharCode(c)), maxLength: 40 });
    const head = fc.record({
      fields: fc.array(fc.tuple(name, value), { maxLength: 12 }).map((pairs) => pairs.flat()),
      tail: fc.constantFrom('\r\n', 'Content-Length: 12\r\n\r\n', 'Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n'),
      request: fc.boolean(),
      path: fc.constantFrom('/', '/a?b=c', '/ü'),
      body: fc.uint8Array({ maxLength: 1500 }),
    });
    const heads = fc.sample(head, { numRuns: 300, seed: FUZZ_SEED });
    const expected: Buffer[] = [];
    for (const h of heads) {
      beginBatch();
      const lead = h.request ? `GET ${h.path} HTTP/1.1\r\nHost: example.test\r\n` : 'HTTP/1.1 200 OK\r\n';
      const n = h.request
        ? writeRequestHead(out, 'GET', h.path, 'example.test', h.fields, h.tail)
        : writeResponseHead(out, 'HTTP/1.1 200 OK\r\n', h.fields, h.tail);
      const text = lead + fieldLines(h.fields) + h.tail;
      expect(n).toBe(text.length);
      const body = Buffer.from(h.body);
      // A small body is copied in behind its head, a larger one pushed: the order holds.
      if (body.length <= STAGED_BODY_BYTES) out.pushCopy(body, 0, body.length);
      else out.push(body);
      endBatch();
      expected.push(Buffer.from(text, 'latin1'), body);
    }
    const want = Buffer.concat(expected);
    expect((await readAll(reader, want.length)).equals(want)).toBe(true);
  });
});
