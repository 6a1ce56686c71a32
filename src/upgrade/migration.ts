/**
 * Connection migration: in an upgrade, established downstream connections move to the new
 * process with their state, so clients never notice (MOSN's signature feature).
 *
 *   old worker                      old main                          new main           new worker
 *   migrate ─▶ each connection
 *     waits for a safe point, stops
 *     reading at the handle, flushes
 *     ─ migrate-out {fd, state} ─▶  wraps the fd (never closed here)
 *                                   ─ migrate-connection + handle ─▶  (SCM_RIGHTS: its own fd)
 *                                                                     ─ adopt + socket ─▶ serves it
 *                                   ◀─ migrate-adopted ─────────────  ◀─ adopted ───────
 *     ◀─ migrate-commit ──────────  closes its fd quietly (no FIN: the new process holds the
 *                                   connection), the connection is gone from the old process
 *
 *   rollback: the new process exits before adopting, or refuses ─▶ migrate-rollback / -abort ─▶
 *   the old worker resumes reading; the connection is served here (and drained as usual)
 *
 * Why this route: a socket that has read a byte cannot be posted between threads, and a worker
 * thread cannot use the main thread's IPC channel (see docs/operations.md, "connection
 * migration"). The old worker therefore hands over only the fd number of a socket whose reading
 * is stopped at the handle; the main thread wraps that number in a handle of its own that it
 * never closes (closing it would close the worker's descriptor: a double close), and sends it
 * through the IPC channel, which duplicates the descriptor into the new process. The worker keeps
 * its own socket, read-stopped, until the new process says it serves the connection: until then
 * a rollback is only "read again". The commit closes the old descriptor; the connection lives on
 * in the new one (a close sends FIN only when the last descriptor goes; nothing may shutdown()).
 *
 * Safe points (nothing half-read, nothing unsent):
 *   HTTP/1: between requests. HTTP/2 (our own codec, so its state is ours to carry): reading
 *   stops once every open stream's request is complete, the responses go out, then the HPACK
 *   decoder table, settings and windows travel (the new encoder empties the peer's table). Bolt/Dubbo: reading stops at once (new calls wait in the kernel),
 *   calls in flight finish, a frame still arriving travels as `unread` bytes. TCP: reading stops
 *   both ways, what was read is written on, both sockets flush; the upstream connection moves too
 *   (the upstream never sees a new connection). TLS (keys live in OpenSSL) cannot move: it
 *   drains as before (GOAWAY, Connection: close).
 */
import type net from 'node:net';
import type { Http2MigratedState } from '../codecs/http2/connection.ts';

/**
 * What the new process needs to go on serving a moved connection. It crosses a thread and the
 * IPC channel (JSON): bytes travel as base64 (`unread`: read here, not decoded yet).
 */
export type MigratedState =
  | { kind: 'http1'; listener: string; unread?: string }
  /** Between streams (or with only responses left, sent first): HPACK table, settings, windows. */
  | { kind: 'http2'; listener: string; h2: Http2MigratedState }
  | { kind: 'bolt'; listener: string; unread?: string }
  | { kind: 'dubbo'; listener: string; unread?: string }
  /** sockets: [downstream, upstream]. */
  | { kind: 'tcp'; listener: string; cluster: string; upstream: string; sni?: string };

/** A connection at its safe point: reading stopped, nothing queued to write. */
export interface MigrationReady {
  readonly sockets: net.Socket[];
  readonly state: MigratedState;
  /** The new process serves it: let go of it here, silently. */
  commit(): void;
  /** It stays here: read again and serve it. */
  rollback(): void;
}

/** Called once: ready to move, or the reason it cannot (it then drains as before). */
export type MigrationDone = (result: MigrationReady | FallbackReason) => void;

/** Why a connection drained instead of moving (a metric label). */
export type FallbackReason = 'tls' | 'half_closed' | 'connecting' | 'deadline' | 'closed' | 'refused' | 'aborted' | 'unsupported';

/** A connection that can move: starts waiting for its safe point; returns a cancel. */
export interface Migratable {
  startMigration(done: MigrationDone): () => void;
}

// ---- between the two processes (IPC) -----------------------------------------------------------

export type OldToNew =
  /** One socket of a connection (`index` of `count`: a TCP session moves two), with its handle. */
  | { type: 'migrate-connection'; id: string; index: number; count: number; state: MigratedState }
  /** A connection the old process accepted while connections move (its listeners stay open for a rollback). */
  | { type: 'migrate-fresh'; listener: string }
  /** Every connection moved or drained: the summary for the new process's metrics. */
  | { type: 'migrate-done'; summary: MigrationSummary };

export type NewToOld = { type: 'migrate-adopted'; id: string; ok: boolean; error?: string };

export interface MigrationSummary {
  migrated: number;
  fallbacks: Partial<Record<FallbackReason, number>>;
  /** Seconds from the upgrade's request to the new process serving it, per moved connection (at most 10,000). */
  seconds: number[];
}

// ---- sockets -----------------------------------------------------------------------------------

interface HandleInternals {
  fd?: number;
  reading?: boolean;
  readStop?(): number;
  writeQueueSize?: number;
}

function handleOf(socket: net.Socket): HandleInternals | undefined {
  return (socket as unknown as { _handle?: HandleInternals | null })._handle ?? undefined;
}

function noRead(): void {}

/**
 * Stops reading at the handle (socket.pause() alone leaves libuv reading into the stream's
 * buffer), and keeps it stopped: while the connection waits to move, a resume() (a pipe's drain,
 * a backpressure release) must not start reading again, or bytes would be read here and lost.
 */
export function stopReading(socket: net.Socket): void {
  socket.pause();
  (socket as unknown as { _read: () => void })._read = noRead;
  const h = handleOf(socket);
  if (h?.reading) {
    h.reading = false;
    h.readStop?.();
  }
}

/**
 * Undoes stopReading (a rollback): the prototype's _read reads again, now (`resume`) or at the
 * socket's next resume(). The stream still believes its last read is under way (libuv's was
 * stopped under it), and would never ask again: it is told it is not.
 */
export function resumeReading(socket: net.Socket, resume = true): void {
  delete (socket as unknown as { _read?: unknown })._read;
  const state = (socket as unknown as { _readableState?: { reading: boolean } })._readableState;
  if (state) state.reading = false;
  if (resume) socket.resume();
}

/** The socket's descriptor, or -1 (no handle, or not a descriptor-backed one). */
export function socketFd(socket: net.Socket): number {
  const fd = handleOf(socket)?.fd;
  return typeof fd === 'number' && fd > 2 ? fd : -1;
}

/** Nothing of ours waits to be written: not in the stream, not in libuv's queue. */
export function flushed(socket: net.Socket, pendingOutput = 0): boolean {
  return pendingOutput === 0 && socket.writableLength === 0 && (handleOf(socket)?.writeQueueSize ?? 0) === 0;
}

const FLUSH_POLL_MS = 2;

/**
 * Calls `then(true)` once every socket is flushed, `then(false)` if one closes first. Polls: a
 * direct handle write (joined-write.ts) emits no 'drain'. Returns a cancel.
 */
export function whenFlushed(sockets: net.Socket[], pendingOutput: () => number, then: (ok: boolean) => void): () => void {
  let timer: NodeJS.Timeout | undefined;
  let cancelled = false;
  const check = () => {
    timer = undefined;
    if (cancelled) return;
    if (sockets.some((s) => s.destroyed)) return then(false);
    if (sockets.every((s, i) => flushed(s, i === 0 ? pendingOutput() : 0))) return then(true);
    timer = setTimeout(check, FLUSH_POLL_MS);
  };
  check();
  return () => {
    cancelled = true;
    clearTimeout(timer);
  };
}

/** A TLS socket's state lives in OpenSSL: it cannot move. */
export function isTlsSocket(socket: net.Socket): boolean {
  return (socket as { encrypted?: boolean }).encrypted === true;
}
