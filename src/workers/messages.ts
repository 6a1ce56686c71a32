/**
 * Control messages between the main (acceptor) thread and a worker. They are rare (a socket
 * hand-off, a drain), so they travel by postMessage; a socket must, as it rides in the transfer
 * list. High-rate state (load) goes through the shared load table instead.
 */
import type net from 'node:net';
import type { ShuttleConfig, LogLevel } from '../config/schema.ts';

export type BalanceMode = 'handoff' | 'reuseport';

/** What a worker is started with (`workerData`). */
export interface WorkerInit {
  readonly workerId: number;
  readonly slot: number;
  readonly config: ShuttleConfig;
  /** The shared plane: per-worker load, counters (one row per slot), host health. */
  readonly loadTable: SharedArrayBuffer;
  readonly stats: SharedArrayBuffer;
  readonly health: SharedArrayBuffer;
  /** This worker's ring of events for the main thread (worker → main). */
  readonly events: SharedArrayBuffer;
  readonly balance: BalanceMode;
  readonly logLevel: LogLevel;
}

export type MainToWorker =
  | { type: 'connection'; listener: string; socket: net.Socket }
  | { type: 'drain'; deadlineMs: number };

export interface BoundListener {
  name: string;
  address: string;
}

export type WorkerToMain =
  | { type: 'ready'; listeners: BoundListener[] }
  | { type: 'listen-failed'; listener: string; error: string };
