/**
 * Control messages between the main (acceptor) thread and a worker. They are rare (a socket
 * hand-off, a drain), so they travel by postMessage; a socket must, as it rides in the transfer
 * list. High-rate state (load) goes through the shared load table instead.
 */
import type net from 'node:net';
import type { ShuttleConfig, LogLevel } from '../config/schema.ts';
import type { Secrets } from '../config/secrets.ts';
import type { EntityIds } from '../shared/directory.ts';
import type { LogFormat } from '../log/logger.ts';
import type { FallbackReason, MigratedState } from '../upgrade/migration.ts';
import type { AcceptedConnection } from '../acceptor/raw-accept.ts';

export type BalanceMode = 'handoff' | 'reuseport';

/** What a worker is started with (`workerData`). */
export interface WorkerInit {
  readonly workerId: number;
  readonly slot: number;
  readonly generation: number;
  readonly config: ShuttleConfig;
  readonly secrets: Secrets;
  readonly ids: EntityIds;
  /** TLS session ticket keys, the same in every worker: a session resumes on any of them. */
  readonly ticketKeys: Uint8Array;
  /** The shared plane: per-worker load, counters (one row per slot), host health. */
  readonly loadTable: SharedArrayBuffer;
  readonly stats: SharedArrayBuffer;
  /** Status codes and latency histograms, one row per slot (shared/request-table.ts). */
  readonly requests: SharedArrayBuffer;
  readonly health: SharedArrayBuffer;
  /** Rate-limit buckets and circuit-breaker counts (filters/shared/policy-table.ts). */
  readonly policy: SharedArrayBuffer;
  /** This worker's ring of events for the main thread (worker → main). */
  readonly events: SharedArrayBuffer;
  readonly balance: BalanceMode;
  /**
   * reuseport, new process of an upgrade: bind nothing at start; the main thread sends 'listen'
   * with the old process's sockets to adopt (a respawned worker binds as usual).
   */
  readonly deferListen?: boolean;
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
  /** Pretty logs in colour (stdout is a terminal). */
  readonly colorize: boolean;
  /** The config file: access-log paths are relative to its folder. */
  readonly configFile: string;
}

/** A config generation as workers receive it: msgpackr-encoded once, in shared memory. */
export interface ConfigSnapshot {
  generation: number;
  config: ShuttleConfig;
  /** PEM contents of the TLS files the config names, by path (never part of the config itself). */
  secrets: Secrets;
  ids: EntityIds;
}

/**
 * An endpoint update (hosts of some clusters, nothing else changed): workers swap those clusters
 * in place instead of building a generation's listeners and routers again.
 */
export interface HostsUpdate {
  generation: number;
  clusters: { /** Position in the config's clusters. */ position: number; config: ShuttleConfig['clusters'][number]; hostIds: number[] }[];
}

export type MainToWorker =
  | { type: 'connection'; listener: string; socket: AcceptedConnection }
  | { type: 'drain'; deadlineMs: number }
  /** Die now (a kill from the admin, or after a fatal error): every message before this one was seen. */
  | { type: 'exit-now' }
  /** A new log level for worker threads (a reload that changes log.level, the admin's /logging). */
  | { type: 'log-level'; level: LogLevel }
  /** Open the access-log files again by name (log rotation, SIGUSR1). */
  | { type: 'reopen-logs' }
  /** New TLS session ticket keys (rotation): the same in every worker. */
  | { type: 'ticket-keys'; keys: Uint8Array }
  /** A new generation: `snapshot` holds a msgpackr-encoded ConfigSnapshot. */
  | { type: 'config'; generation: number; snapshot: SharedArrayBuffer }
  /** A new generation that changes only hosts: `update` holds a msgpackr-encoded HostsUpdate. */
  | { type: 'hosts'; generation: number; update: SharedArrayBuffer }
  // ---- connection migration (upgrade/migration.ts) ----
  /** Old process: move every connection to the new process; those not at a safe point within `windowMs` drain. */
  | { type: 'migrate'; windowMs: number }
  /** Old process: the new process serves connection `seq`: let go of it. */
  | { type: 'migrate-commit'; seq: number }
  /** Old process: the new process did not take connection `seq`: serve it here (it drains). */
  | { type: 'migrate-rollback'; seq: number }
  /** Old process: the new process is gone: every connection not moved yet is served here again. */
  | { type: 'migrate-abort' }
  /** New process: serve a connection moved from the old process (sockets: the downstream first). */
  | { type: 'adopt'; id: string; state: MigratedState; sockets: net.Socket[] }
  // ---- reuseport sockets across an upgrade (workers/own-listeners.ts) ----
  /** Old process: transfer your listening sockets to the main thread (answer: lent-listeners). */
  | { type: 'lend-listeners' }
  /** Old process: your lent sockets, given back (the new process holds copies now). */
  | { type: 'give-back-listeners'; listeners: LentListener[] }
  /** New process, started with deferListen: adopt these sockets, bind the listeners left (answer: listening). */
  | { type: 'listen'; inherited: LentListener[] };

/** A listening socket in transit between a worker and the main thread (in the transfer list). */
export interface LentListener {
  name: string;
  server: net.Server;
}

export interface BoundListener {
  name: string;
  address: string;
}

export type WorkerToMain =
  | { type: 'ready'; listeners: BoundListener[] }
  | { type: 'listen-failed'; listener: string; error: string }
  | { type: 'config-applied'; generation: number }
  | { type: 'config-failed'; generation: number; error: string }
  /** A connection that reached a worker already exiting, handed back untouched to go elsewhere. */
  | { type: 'bounce'; listener: string; socket: AcceptedConnection }
  /** An uncaught error: the worker marked itself EXITING and waits for exit-now. */
  | { type: 'fatal'; error: string }
  /** A connection at its safe point: its descriptors (reading stopped) and what the new process needs. */
  | { type: 'migrate-out'; seq: number; fds: number[]; state: MigratedState; waitedMs: number }
  | { type: 'migrate-fallback'; reason: FallbackReason }
  /** Every connection of this worker moved or fell back to draining. */
  | { type: 'migrate-settled' }
  | { type: 'adopted'; id: string; ok: boolean; error?: string }
  | { type: 'lent-listeners'; listeners: LentListener[] }
  /** The answer to 'listen': every listener of the config is served. */
  | { type: 'listening'; listeners: BoundListener[] };
