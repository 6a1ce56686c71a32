/** A real @grpc/grpc-js Echo server and clients for the gRPC tests (test/support/proto/echo.proto). */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
export const grpc = require('@grpc/grpc-js') as typeof import('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader') as typeof import('@grpc/proto-loader');

const PROTOS = ['echo.proto', 'health.proto'].map((f) => fileURLToPath(new URL(`./proto/${f}`, import.meta.url)));
const definition = protoLoader.loadSync(PROTOS, { keepCase: true, longs: Number, enums: String, defaults: true });
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const pkg = grpc.loadPackageDefinition(definition) as any;
export const EchoService = pkg.shuttle.test.Echo;
const HealthService = pkg.grpc.health.v1.Health;

export interface Msg {
  text?: string;
  payload?: Buffer;
  seq?: number;
  count?: number;
  delay_ms?: number;
  fail_code?: number;
  sha256?: string;
  bytes?: number;
}

export interface EchoServer {
  port: number;
  address: string;
  /** Calls whose client went away (the proxy passed the cancel on). */
  cancelled: string[];
  /** Unary calls seen, by text. */
  unaryCalls: Map<string, number>;
  /** What grpc.health.v1.Health/Check answers. */
  health: { status: 'SERVING' | 'NOT_SERVING' };
  server: import('@grpc/grpc-js').Server;
  close(): Promise<void>;
}

/** Starts the Echo service on 127.0.0.1 (any port, or `port`). `name` is echoed back in texts. */
export async function echoServer(name: string, port = 0): Promise<EchoServer> {
  const server = new grpc.Server();
  const state = { cancelled: [] as string[], unaryCalls: new Map<string, number>(), health: { status: 'SERVING' as 'SERVING' | 'NOT_SERVING' } };
  server.addService(HealthService.service, {
    Check(_call: unknown, cb: import('@grpc/grpc-js').sendUnaryData<{ status: string }>) {
      cb(null, { status: state.health.status });
    },
  });
  server.addService(EchoService.service, {
    Unary(call: import('@grpc/grpc-js').ServerUnaryCall<Msg, Msg>, cb: import('@grpc/grpc-js').sendUnaryData<Msg>) {
      const m = call.request;
      const seen = (state.unaryCalls.get(m.text ?? '') ?? 0) + 1;
      state.unaryCalls.set(m.text ?? '', seen);
      call.on('cancelled', () => state.cancelled.push(m.text ?? ''));
      const answer = () => {
        // "fail:N:K": fail with status N on the first K calls of this text, then answer.
        const failFirst = /^fail-first:(\d+):(\d+)/.exec(m.text ?? '');
        if (failFirst && seen <= Number(failFirst[2])) return cb({ code: Number(failFirst[1]), details: `failing call ${seen}` });
        if (m.fail_code) return cb({ code: m.fail_code, details: m.text ?? '' });
        const md = new grpc.Metadata();
        md.set('x-served-by', name);
        call.sendMetadata(md);
        cb(null, { text: `${name}:${m.text}`, seq: m.seq, payload: m.payload });
      };
      if (m.delay_ms) setTimeout(answer, m.delay_ms);
      else answer();
    },
    ServerStream(call: import('@grpc/grpc-js').ServerWritableStream<Msg, Msg>) {
      const n = call.request.count ?? 0;
      let i = 0;
      call.on('cancelled', () => state.cancelled.push(call.request.text ?? ''));
      const pump = () => {
        while (i < n) {
          const ok = call.write({ seq: i++, text: call.request.text, payload: call.request.payload });
          if (!ok) return void call.once('drain', pump);
        }
        call.end();
      };
      if (call.request.delay_ms) setTimeout(pump, call.request.delay_ms);
      else pump();
    },
    ClientStream(call: import('@grpc/grpc-js').ServerReadableStream<Msg, Msg>, cb: import('@grpc/grpc-js').sendUnaryData<Msg>) {
      const hash = createHash('sha256');
      let bytes = 0;
      let count = 0;
      let inOrder = true;
      call.on('data', (m: Msg) => {
        if ((m.seq ?? 0) !== count) inOrder = false;
        count++;
        if (m.payload) {
          hash.update(m.payload);
          bytes += m.payload.length;
        }
      });
      call.on('end', () => cb(null, { count, bytes, sha256: hash.digest('hex'), text: inOrder ? 'in-order' : 'out-of-order' }));
    },
    Bidi(call: import('@grpc/grpc-js').ServerDuplexStream<Msg, Msg>) {
      call.on('data', (m: Msg) => call.write({ seq: m.seq, text: `${name}:${m.text}` }));
      call.on('end', () => call.end());
    },
  });
  const bound = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  return {
    port: bound,
    address: `127.0.0.1:${bound}`,
    ...state,
    server,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}

/** A client of the Echo service at `address` (h2c). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function echoClient(address: string, options: Record<string, unknown> = {}): any {
  return new EchoService(address, grpc.credentials.createInsecure(), { 'grpc.enable_retries': 0, ...options });
}

/** A unary call as a promise: resolves with the response (and metadata), rejects with the gRPC error. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function unary(client: any, msg: Msg, opts: { deadlineMs?: number; headers?: Record<string, string> } = {}): Promise<{ msg: Msg; metadata: import('@grpc/grpc-js').Metadata | undefined }> {
  return new Promise((resolve, reject) => {
    let metadata: import('@grpc/grpc-js').Metadata | undefined;
    const callOpts = opts.deadlineMs ? { deadline: new Date(Date.now() + opts.deadlineMs) } : {};
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(opts.headers ?? {})) md.set(k, v);
    const call = client.Unary(msg, md, callOpts, (err: Error | null, res: Msg) => (err ? reject(err) : resolve({ msg: res, metadata })));
    call.on('metadata', (md: import('@grpc/grpc-js').Metadata) => (metadata = md));
  });
}
