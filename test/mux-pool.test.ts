/**
 * The Bolt pool as a generic Pool (layers.ts), against a real sofa-rpc-node server: a stream's
 * headers are the call's frame, its answer comes back as the response frame's headers; failures
 * come back as stream resets with the reasons the HTTP pools use.
 */
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Host } from '../src/cluster/host.ts';
import { BoltStatus, decodeBoltFrame, type BoltFrame } from '../src/codecs/bolt/frame.ts';
import type { ShuttleError } from '../src/errors.ts';
import type { HeaderMap, StreamDecoder, StreamEncoder, StreamResetReason, UpstreamInfo } from '../src/layers.ts';
import { boltProtocol } from '../src/proxy/rpc/bolt.ts';
import { HeaderMap as Headers } from '../src/stream/header-map.ts';
import { FrameHeaders, MuxPool } from '../src/stream/mux-pool.ts';
import type { WorkerTelemetry } from '../src/workers/telemetry.ts';
import { startBoltServer, type BoltUpstream } from './support/bolt-upstream.ts';
import { closedPort } from './support/net.ts';

const require = createRequire(import.meta.url);
const sofa = require('sofa-bolt-node/lib/protocol') as { requestEncode(id: number, req: object, options: object): Buffer };

/** The connector's counters only (this test looks at streams, not at metrics). */
const telemetry = {
  upstreamConnecting() {}, upstreamConnected() {}, upstreamClosed() {}, upstreamConnectFailed() {}, upstreamTlsFailed() {},
} as unknown as WorkerTelemetry;

function call(method: string, args: object[], id = 7): BoltFrame {
  const raw = sofa.requestEncode(id, {
    serverSignature: 'com.example.Echo:1.0', methodName: method, args, timeout: 5000, requestProps: { service: 'com.example.Echo:1.0' },
  }, { protocolType: 'bolt', codecType: 'hessian2', boltVersion: 1, crcEnable: false, sentReqs: new Map(), classCache: new Map() });
  return decodeBoltFrame(raw, 0, 1 << 20)!.frame;
}

/** A stream's outcome: the answer's frame, or the reset. */
interface Outcome { answer?: BoltFrame; endStream?: boolean; reset?: StreamResetReason; error?: ShuttleError; info?: UpstreamInfo }

function openStream(pool: MuxPool<BoltFrame>, headers: (frame: BoltFrame) => HeaderMap, frame: BoltFrame): { done: Promise<Outcome>; encoder: () => StreamEncoder } {
  let encoder: StreamEncoder | undefined;
  const done = new Promise<Outcome>((resolve) => {
    const out: Outcome = {};
    const decoder: StreamDecoder = {
      decodeInformational() {},
      decodeHeaders(h, endStream) {
        resolve({ ...out, answer: (h as FrameHeaders<BoltFrame>).frame, endStream });
      },
      decodeData() {},
      decodeTrailers() {},
      onReset(reason, error) {
        resolve({ ...out, reset: reason, error });
      },
    };
    pool.newStream(decoder, {
      onPoolReady(e, info) {
        encoder = e;
        out.info = info;
        e.encodeHeaders(headers(frame), true);
      },
      onPoolFailure(error) {
        resolve({ reset: 'connection-failure', error });
      },
    }, 0);
  });
  return { done, encoder: () => encoder! };
}

const poolTo = (port: number) => new MuxPool<BoltFrame>(new Host({ host: '127.0.0.1', port, weight: 1 }), { size: 1, connectTimeout: 2000, maxFrameBytes: 1 << 20 }, boltProtocol, telemetry);

describe('MuxPool as a Pool', () => {
  let up: BoltUpstream;
  beforeAll(async () => {
    up = await startBoltServer('up');
  });
  afterAll(() => {
    up.child.kill('SIGKILL');
  });

  it('sends a call as its stream headers and decodes the answer as the stream headers, under the caller id', async () => {
    const pool = poolTo(up.port);
    const { done } = openStream(pool, (f) => new FrameHeaders(f), call('echo', [{ $class: 'java.lang.String', $: 'hello' }], 7));
    const out = await done;
    expect(out.info).toMatchObject({ protocol: 'bolt', reused: false });
    expect(out.reset).toBeUndefined();
    expect(out.endStream).toBe(true);
    expect(out.answer!.status).toBe(BoltStatus.SUCCESS);
    expect(out.answer!.content.includes(Buffer.from('up:hello'))).toBe(true);
    pool.drain();
  });

  it('resets a stream whose headers are not a frame of its protocol (no HTTP → Bolt translation)', async () => {
    const pool = poolTo(up.port);
    const out = await openStream(pool, () => Headers.request('GET', '/', 'example'), call('echo', [])).done;
    expect(out.reset).toBe('protocol-error');
    expect(out.error?.code).toBe('SHUTTLE_E_NO_TRANSLATION');
    pool.drain();
  });

  it('resets with connection-failure when the host refuses the connection (nothing was sent)', async () => {
    const pool = poolTo(await closedPort());
    const out = await openStream(pool, (f) => new FrameHeaders(f), call('echo', [{ $class: 'java.lang.String', $: 'x' }])).done;
    expect(out.reset).toBe('connection-failure');
    expect(out.error?.code).toBe('SHUTTLE_E_UPSTREAM_CONNECT_FAILED');
  });

  it('hears nothing of a call it reset, while the next call on the connection is answered', async () => {
    const pool = poolTo(up.port);
    let late = false;
    const slow = openStream(pool, (f) => new FrameHeaders(f), call('slow', [{ $class: 'int', $: 300 }], 1));
    void slow.done.then(() => (late = true));
    await up.slowCallStarted();
    slow.encoder().reset('local');
    const next = await openStream(pool, (f) => new FrameHeaders(f), call('echo', [{ $class: 'java.lang.String', $: 'after' }], 2)).done;
    expect(next.answer!.content.includes(Buffer.from('up:after'))).toBe(true);
    // The slow answer comes 300 ms after it started: wait past it, and it must not have arrived.
    await new Promise((r) => setTimeout(r, 600));
    expect(late).toBe(false);
    pool.drain();
  });

  it('resets in-flight streams with connection-termination when the upstream goes away', async () => {
    const other = await startBoltServer('doomed');
    const pool = poolTo(other.port);
    const slow = openStream(pool, (f) => new FrameHeaders(f), call('slow', [{ $class: 'int', $: 10_000 }], 3));
    await other.slowCallStarted();
    other.child.kill('SIGKILL');
    const out = await slow.done;
    expect(out.reset).toBe('connection-termination');
    expect(out.error?.code).toBe('SHUTTLE_E_UPSTREAM_RESET');
  });
});
