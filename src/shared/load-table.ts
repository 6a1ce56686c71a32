/**
 * Per-worker load, shared by every thread without messages: an Int32Array over a
 * SharedArrayBuffer, one fixed-size row per worker slot, read and written with Atomics.
 *
 *   slot 0: [ state | active connections | total connections | active streams ]
 *   slot 1: [ state | ...                                                      ]
 *
 * Who writes what: the acceptor adds a connection to a slot when it hands a socket over (so a
 * burst of accepts sees its own hand-offs at once); the worker subtracts it when the connection
 * closes. In reuseport mode the worker does both. The supervisor owns `state`.
 */
export const WorkerState = {
  EMPTY: 0,
  STARTING: 1,
  READY: 2,
  DRAINING: 3,
  /** Dying (killed, or crashed): takes no connection, and hands back any still on their way to it. */
  EXITING: 4,
} as const;
export type WorkerStateValue = (typeof WorkerState)[keyof typeof WorkerState];

const STATE_NAMES = ['empty', 'starting', 'ready', 'draining', 'exiting'] as const;
export function workerStateName(state: WorkerStateValue): (typeof STATE_NAMES)[number] {
  return STATE_NAMES[state];
}

const STATE = 0;
const ACTIVE_CONNECTIONS = 1;
const TOTAL_CONNECTIONS = 2;
const ACTIVE_STREAMS = 3;
const ROW = 4;

export interface WorkerLoad {
  slot: number;
  state: WorkerStateValue;
  activeConnections: number;
  totalConnections: number;
  activeStreams: number;
}

export class LoadTable {
  readonly buffer: SharedArrayBuffer;
  readonly slots: number;
  private readonly cells: Int32Array;

  constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    this.cells = new Int32Array(buffer);
    this.slots = this.cells.length / ROW;
  }

  static create(slots: number): LoadTable {
    return new LoadTable(new SharedArrayBuffer(slots * ROW * Int32Array.BYTES_PER_ELEMENT));
  }

  state(slot: number): WorkerStateValue {
    return Atomics.load(this.cells, slot * ROW + STATE) as WorkerStateValue;
  }

  setState(slot: number, state: WorkerStateValue): void {
    Atomics.store(this.cells, slot * ROW + STATE, state);
  }

  activeConnections(slot: number): number {
    return Atomics.load(this.cells, slot * ROW + ACTIVE_CONNECTIONS);
  }

  connectionOpened(slot: number): void {
    Atomics.add(this.cells, slot * ROW + ACTIVE_CONNECTIONS, 1);
    Atomics.add(this.cells, slot * ROW + TOTAL_CONNECTIONS, 1);
  }

  connectionClosed(slot: number): void {
    Atomics.sub(this.cells, slot * ROW + ACTIVE_CONNECTIONS, 1);
  }

  streamsChanged(slot: number, delta: number): void {
    Atomics.add(this.cells, slot * ROW + ACTIVE_STREAMS, delta);
  }

  /** A replaced worker's connections died with it: its row starts again from zero. */
  reset(slot: number, state: WorkerStateValue): void {
    Atomics.store(this.cells, slot * ROW + ACTIVE_CONNECTIONS, 0);
    Atomics.store(this.cells, slot * ROW + ACTIVE_STREAMS, 0);
    Atomics.store(this.cells, slot * ROW + STATE, state);
  }

  read(slot: number): WorkerLoad {
    const base = slot * ROW;
    return {
      slot,
      state: Atomics.load(this.cells, base + STATE) as WorkerStateValue,
      activeConnections: Atomics.load(this.cells, base + ACTIVE_CONNECTIONS),
      totalConnections: Atomics.load(this.cells, base + TOTAL_CONNECTIONS),
      activeStreams: Atomics.load(this.cells, base + ACTIVE_STREAMS),
    };
  }

  /**
   * The ready slot with the fewest active connections. Ties go to the first slot at or after
   * `from`, so equal loads rotate instead of piling onto slot 0. -1 when no slot is ready.
   */
  leastLoaded(from: number): number {
    let best = -1;
    let bestLoad = Infinity;
    for (let i = 0; i < this.slots; i++) {
      const slot = (from + i) % this.slots;
      if (this.state(slot) !== WorkerState.READY) continue;
      const load = this.activeConnections(slot);
      if (load < bestLoad) {
        best = slot;
        bestLoad = load;
      }
    }
    return best;
  }
}
