/**
 * Cost of Shuttle's own HTTP/1.1 request decoding, per request, against the least any parser must
 * do (finding the end of the head). Used to decide between our parser and llhttp: see RESULTS.md.
 *
 *   node bench/http-parser.ts      (env: N=200000)
 */
import { RequestDecoder } from '../src/codecs/http1/decoder.ts';
import { median } from './support/lib.ts';

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

const runs = { decoder: [] as number[], headEnd: [] as number[] };
for (let r = 0; r < 7; r++) {
  runs.decoder.push(decoder());
  runs.headEnd.push(headEndOnly());
}
console.log(`request of ${request.length} bytes, 9 header fields, ${N} per run, median of 7 runs (node ${process.version})`);
console.log(`  Shuttle RequestDecoder (head parsed, validated, framing derived): ${median(runs.decoder).toFixed(0)} ns/request`);
console.log(`  finding the end of the head only (Buffer.indexOf):                ${median(runs.headEnd).toFixed(0)} ns/request`);
