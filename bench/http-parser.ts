/**
 * Cost of Shuttle's own HTTP/1.1 request decoding, per request, against llhttp (the WebAssembly
 * build undici ships, driven as cheaply as it allows) and against the least any parser must do
 * (finding the end of the head). Used to choose the parser: see RESULTS.md.
 *
 *   node bench/http-parser.ts      (env: N=200000)
 */
import { createRequire } from 'node:module';
import { RequestDecoder } from '../src/codecs/http1/decoder.ts';
import { median } from './support/lib.ts';

const require = createRequire(import.meta.url);
/** The WebAssembly global (not in this project's TypeScript libs, which leave out the DOM). */
const wasm = (globalThis as unknown as {
  WebAssembly: { Module: new (bytes: Uint8Array) => object; Instance: new (m: object, imports: object) => { exports: Record<string, unknown> } };
}).WebAssembly;

const N = Number(process.env.N ?? 200_000);
const request = Buffer.from(
  'GET /api/v1/users/12345?expand=orders HTTP/1.1\r\nHost: api.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) bench\r\n' +
  'Accept: application/json\r\nAccept-Encoding: gzip, deflate\r\nAccept-Language: en-US,en;q=0.9\r\nCookie: session=abcdef0123456789; theme=dark\r\n' +
  'X-Request-Id: 0f8e2a1c-9b7d-4e3f-8a6b-5c4d3e2f1a0b\r\nConnection: keep-alive\r\n\r\n',
);

function decoder(): number {
  let heads = 0;
  const d = new RequestDecoder({ onHead: () => heads++, onBody: () => {}, onComplete: () => d.resume() });
  const t = process.hrtime.bigint();
  for (let i = 0; i < N; i++) d.feed(request);
  const ns = Number(process.hrtime.bigint() - t) / N;
  if (heads !== N) throw new Error(`decoded ${heads} of ${N}`);
  return ns;
}

function headEndOnly(): number {
  const crlf = Buffer.from('\r\n\r\n');
  let found = 0;
  const t = process.hrtime.bigint();
  for (let i = 0; i < N; i++) if (request.indexOf(crlf) > 0) found++;
  const ns = Number(process.hrtime.bigint() - t) / N;
  if (found !== N) throw new Error('not found');
  return ns;
}

type Latin1Buffer = Buffer & { latin1Slice(start: number, end: number): string };

/**
 * llhttp as a proxy would have to use it: copy each read into wasm memory, execute, and turn the
 * method, target and fields into strings. The callbacks only record offsets; the strings are
 * sliced from one latin1 string of the head afterwards (cheaper than a string per callback, which
 * is what undici does). Framing (Content-Length, chunked, keep-alive) is llhttp's own work.
 */
function llhttp(): number {
  const constants = require('undici/lib/llhttp/constants.js');
  const spans = new Int32Array(512); // [at, len] per url / field / value
  let n = 0;
  let heads = 0;
  const record = (_p: number, at: number, len: number) => {
    spans[n++] = at;
    spans[n++] = len;
    return 0;
  };
  let exports!: Record<string, CallableFunction> & { memory: { buffer: ArrayBuffer } };
  let view: Latin1Buffer;
  let base = 0;
  let parsed: { method: number; target: string; headers: string[] } | undefined;
  const instance = new wasm.Instance(new wasm.Module(require('undici/lib/llhttp/llhttp_simd-wasm.js')), {
    env: {
      wasm_on_message_begin: () => ((n = 0), 0),
      wasm_on_url: record,
      wasm_on_status: () => 0,
      wasm_on_header_field: record,
      wasm_on_header_value: record,
      wasm_on_headers_complete: (p: number) => {
        // One string for the head, fields sliced from it.
        const end = spans[n - 2] + spans[n - 1];
        const text = view.latin1Slice(base, end);
        const headers: string[] = [];
        for (let i = 2; i < n; i += 2) headers.push(text.slice(spans[i] - base, spans[i] - base + spans[i + 1]));
        parsed = { method: (exports.llhttp_get_method as (p: number) => number)(p), target: text.slice(spans[0] - base, spans[0] - base + spans[1]), headers };
        heads++;
        return 0;
      },
      wasm_on_body: () => 0,
      wasm_on_message_complete: () => 0,
    },
  });
  exports = instance.exports as unknown as typeof exports;
  (exports._initialize as () => void)?.();
  const parser = (exports.llhttp_alloc as (t: number) => number)(constants.TYPE.REQUEST);
  const ptr = (exports.malloc as (n: number) => number)(4096);
  view = Buffer.from(exports.memory.buffer) as Latin1Buffer;
  const execute = exports.llhttp_execute as (p: number, at: number, len: number) => number;
  const t = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    view.set(request, ptr);
    base = ptr;
    if (execute(parser, ptr, request.length) !== constants.ERROR.OK) throw new Error('llhttp failed');
  }
  const ns = Number(process.hrtime.bigint() - t) / N;
  if (heads !== N || parsed?.headers.length !== 16) throw new Error(`llhttp decoded ${heads} of ${N}: ${JSON.stringify(parsed)}`);
  return ns;
}

const runs = { decoder: [] as number[], llhttp: [] as number[], headEnd: [] as number[] };
for (let r = 0; r < 7; r++) {
  runs.decoder.push(decoder());
  runs.llhttp.push(llhttp());
  runs.headEnd.push(headEndOnly());
}
console.log(`request of ${request.length} bytes, 8 header fields, ${N} per run, median of 7 runs (node ${process.version})`);
console.log(`  Shuttle RequestDecoder (head parsed, validated, framing derived): ${median(runs.decoder).toFixed(0)} ns/request`);
console.log(`  llhttp (undici's WebAssembly build, copy in + strings out):      ${median(runs.llhttp).toFixed(0)} ns/request`);
console.log(`  finding the end of the head only (Buffer.indexOf):                ${median(runs.headEnd).toFixed(0)} ns/request`);
