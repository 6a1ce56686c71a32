/**
 * Every upstream connection is opened here (HTTP/1 and HTTP/2 pools, RPC pools, the TCP proxy):
 * one place for the connect timeout, the connection counters and gauges, and the outlier
 * detector's connect-failure events. TLS to upstreams will plug in here.
 *
 *   connect(host) ─▶ counters: cx_total++, cx_active++ ─▶ net.connect (noDelay, optional onread)
 *        ├─ connected ─▶ done(socket)                       ├─ closed later ─▶ cx_active--
 *        └─ refused / timed out ─▶ connect_fail++ (timeout++), outlier event ─▶ done(error)
 */
import net from 'node:net';
import type { Host } from '../cluster/host.ts';
import { ShuttleError } from '../errors.ts';
import type { ConnectOptions } from '../layers.ts';
import type { WorkerTelemetry } from '../workers/telemetry.ts';
import { Deadline, deadlines } from './deadlines.ts';
import { connectTls } from '../net/tls-client.ts';

export type ConnectDone = (error: ShuttleError | undefined, socket?: net.Socket) => void;

export function connectUpstream(host: Host, telemetry: WorkerTelemetry, opts: ConnectOptions, done: ConnectDone): net.Socket {
  host.activeConnections++;
  telemetry.upstreamConnecting(host);
  const startedAt = performance.now();
  const socket = opts.tls !== undefined
    ? connectTls(opts.tls, host.host, host.port, opts.allowHalfOpen)
    : net.connect({ host: host.host, port: host.port, noDelay: true, onread: opts.onread, allowHalfOpen: opts.allowHalfOpen });
  let settled = false;
  const timer = new Deadline(() => {
    socket.destroy(new ShuttleError('SHUTTLE_E_UPSTREAM_CONNECT_TIMEOUT', 'upstream', `connect to ${host.address} timed out after ${opts.timeoutMs}ms`));
  });
  timer.arm(deadlines.queue(opts.timeoutMs));
  const onError = (err: Error) => {
    timer.cancel();
    if (settled) return;
    settled = true;
    const tlsFailure = opts.tls !== undefined && tcpConnected;
    const error = err instanceof ShuttleError ? err : new ShuttleError('SHUTTLE_E_UPSTREAM_CONNECT_FAILED', 'upstream', `${tlsFailure ? 'TLS to' : 'connect to'} ${host.address} failed: ${err.message}`, { cause: err });
    telemetry.upstreamConnectFailed(host, error.code === 'SHUTTLE_E_UPSTREAM_CONNECT_TIMEOUT');
    if (tlsFailure) telemetry.upstreamTlsFailed(host);
    done(error);
  };
  socket.once('error', onError);
  socket.once('close', () => {
    timer.cancel();
    host.activeConnections--;
    telemetry.upstreamClosed(host);
    if (settled) return;
    // Destroyed by its owner while connecting (the client went away): not the host's failure.
    settled = true;
    done(new ShuttleError('SHUTTLE_E_UPSTREAM_CONNECT_FAILED', 'upstream', `connect to ${host.address} abandoned`));
  });
  // With TLS the connection counts as made once the handshake is (a bad certificate is a connect failure).
  let tcpConnected = false;
  socket.once('connect', () => (tcpConnected = true));
  socket.once(opts.tls !== undefined ? 'secureConnect' : 'connect', () => {
    timer.cancel();
    settled = true;
    socket.off('error', onError);
    telemetry.upstreamConnected(host, performance.now() - startedAt);
    done(undefined, socket);
  });
  return socket;
}
