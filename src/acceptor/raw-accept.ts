/**
 * Accepted connections as bare TCP handles: what the acceptor hands to a worker without ever
 * building a `net.Socket` for it.
 *
 * Why: in handoff mode the acceptor only moves each connection to a worker. Through the
 * `'connection'` event Node first builds a full `net.Socket` (a Duplex, its stream states and
 * listeners) around the accepted handle, and transferring it destroys that socket again; the
 * worker then receives a socket rebuilt property by property (a dictionary-mode object), which
 * net/socket-io.ts's adoptTransferred() replaces by a fresh one. The handle alone is what crosses
 * the thread (Node's own Socket transfer lists `[socket._handle]`), so the acceptor takes it from
 * the listening handle's `onconnection` callback and posts it; the worker wraps it once.
 * Measured with a connect-send-close loop (10 in flight, /proc per thread): acceptor CPU per
 * connection 36–46 → 30–34 µs, the whole process 105–139 → 95–114 µs.
 *
 * `onconnection` is Node's internal contract between a listening TCP handle and net.Server: it is
 * feature-tested, and without it (or for an accept error, or when the caller wants a socket) the
 * connection takes Node's own path and arrives as a `'connection'` event.
 */
import net from 'node:net';
import type { Transferable } from 'node:worker_threads';

/** An accepted connection's libuv TCP handle, not yet wrapped by any `net.Socket` (transferable). */
export interface AcceptedHandle {
  readonly __acceptedHandle: unique symbol;
}

/** What the acceptor hands to a worker: a socket (Node's path) or a bare handle (the fast path). */
export type AcceptedConnection = net.Socket | AcceptedHandle;

type OnConnection = (this: unknown, status: number, clientHandle: unknown) => void;

interface ListeningHandle {
  onconnection?: OnConnection;
}

/**
 * From now on, connections accepted by `server` go to `onHandle` as bare handles, unless
 * `wantSocket()` says otherwise for one (it then takes Node's path: a `'connection'` event).
 * Call once the server listens (its handle exists). False, changing nothing, if Node's internals
 * are not as expected.
 */
export function acceptHandles(server: net.Server, onHandle: (handle: AcceptedHandle) => void, wantSocket: () => boolean): boolean {
  const listening = (server as unknown as { _handle?: ListeningHandle | null })._handle;
  const nodeOnConnection = listening?.onconnection;
  if (typeof nodeOnConnection !== 'function') return false;
  listening!.onconnection = function onconnection(this: unknown, status: number, clientHandle: unknown) {
    if (status !== 0 || clientHandle === undefined || clientHandle === null || wantSocket()) return nodeOnConnection.call(this, status, clientHandle);
    onHandle(clientHandle as AcceptedHandle);
  };
  return true;
}

/** The transfer list that moves `c` to another thread (a bare handle moves as Node's Socket moves its own). */
export function transferList(c: AcceptedConnection): Transferable[] {
  return [c as unknown as Transferable];
}

export function isSocket(c: AcceptedConnection): c is net.Socket {
  return c instanceof net.Socket;
}

/** Closes a connection nobody will serve. */
export function closeAccepted(c: AcceptedConnection): void {
  if (isSocket(c)) c.destroy();
  else (c as unknown as { close(): void }).close();
}

/**
 * A `net.Socket` on a handle the acceptor handed over, not reading yet (`manualStart`, as
 * `pauseOnConnect` leaves Node's): a 'data' listener or resume() starts it. The acceptor's
 * listening sockets allow half-open connections, so these do.
 */
export function socketOnHandle(handle: AcceptedHandle): net.Socket {
  return new net.Socket({ handle, allowHalfOpen: true, manualStart: true } as unknown as net.SocketConstructorOpts);
}
