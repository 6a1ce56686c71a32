/**
 * Request outcomes shared by all threads: responses by status code, and latency histograms with
 * fixed buckets, per listener, cluster and named route. Like the stats table, one Float64Array row
 * per worker slot, written by that worker only (no atomics, no cache-line contention between
 * workers); the admin sums the rows at scrape, so a histogram is the sum of every thread's.
 *
 *   row(slot)      = [ listener blocks | cluster blocks | route blocks ]   (by stable id)
 *   listener block = [ codes | downstream request time ]
 *   cluster block  = [ codes | upstream request time | upstream connect time ]
 *   route block    = [ codes | request time ]
 *   codes          = a cell per tracked status code, then an "other" cell per class (1xx…5xx)
 *   histogram      = a cell per bucket (not cumulative; the last is +Inf), then the sum in seconds
 *
 * Recording is a bucket search over 17 bounds and two additions: no allocation per request.
 * A histogram's count is the sum of its buckets, so a reader never sees them disagree.
 */
import { MAX_CLUSTERS, MAX_LISTENERS, MAX_ROUTES } from './directory.ts';

/** Upper bounds of the latency buckets, in seconds (Prometheus' unit); +Inf follows. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300] as const;
const BOUNDS_MS = Float64Array.from(LATENCY_BUCKETS, (s) => s * 1000);
/** Bucket cells (the last is +Inf), then the sum. */
export const HISTOGRAM_CELLS = LATENCY_BUCKETS.length + 2;
const SUM = LATENCY_BUCKETS.length + 1;

/**
 * Status codes counted one by one: those a proxy meets. Any other code is counted as its class's
 * "other" (label response_code="other"), so a misbehaving upstream cannot grow the label set.
 */
export const TRACKED_STATUS_CODES = [
  100, 101, 103,
  200, 201, 202, 204, 206,
  301, 302, 303, 304, 307, 308,
  400, 401, 403, 404, 405, 406, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 421, 422, 425, 426, 428, 429, 431, 451,
  500, 501, 502, 503, 504, 505, 507, 511,
] as const;
export const CODE_CELLS = TRACKED_STATUS_CODES.length + 5;
/** Status → its cell in a codes block; -1 for no status (0: the client went away first). */
const CELL_OF_STATUS = new Int16Array(600).fill(-1);
for (let status = 100; status < 600; status++) CELL_OF_STATUS[status] = TRACKED_STATUS_CODES.length + Math.floor(status / 100) - 1;
TRACKED_STATUS_CODES.forEach((code, i) => (CELL_OF_STATUS[code] = i));

export const LISTENER_BLOCK = CODE_CELLS + HISTOGRAM_CELLS;
export const CLUSTER_BLOCK = CODE_CELLS + 2 * HISTOGRAM_CELLS;
export const ROUTE_BLOCK = CODE_CELLS + HISTOGRAM_CELLS;
const CLUSTER_BASE = MAX_LISTENERS * LISTENER_BLOCK;
const ROUTE_BASE = CLUSTER_BASE + MAX_CLUSTERS * CLUSTER_BLOCK;
export const REQUEST_ROW_WIDTH = ROUTE_BASE + MAX_ROUTES * ROUTE_BLOCK;

/** Where each block and histogram starts in a row. */
export const RequestCells = {
  listener: (id: number) => id * LISTENER_BLOCK,
  cluster: (id: number) => CLUSTER_BASE + id * CLUSTER_BLOCK,
  route: (id: number) => ROUTE_BASE + id * ROUTE_BLOCK,
  /** The histogram after a block's codes (downstream time, upstream time, route time). */
  firstHistogram: (block: number) => block + CODE_CELLS,
  /** A cluster's connect time. */
  secondHistogram: (block: number) => block + CODE_CELLS + HISTOGRAM_CELLS,
} as const;

/** Counts a response's status in a codes block (nothing for status 0 or out of range). */
export function recordStatus(row: Float64Array, block: number, status: number): void {
  const cell = status > 0 && status < 600 ? CELL_OF_STATUS[status] : -1;
  if (cell >= 0) row[block + cell]++;
}

/** Adds one observation, in milliseconds, to the histogram at `at`. */
export function recordLatency(row: Float64Array, at: number, ms: number): void {
  let bucket = 0;
  while (bucket < BOUNDS_MS.length && ms > BOUNDS_MS[bucket]) bucket++;
  row[at + bucket]++;
  row[at + SUM] += ms / 1000;
}

/** "2xx" for 204. */
export function statusClass(status: number): string {
  return `${Math.floor(status / 100)}xx`;
}

export interface HistogramSnapshot {
  /** Cumulative counts, one per bound of LATENCY_BUCKETS, then +Inf (= count). */
  cumulative: number[];
  sum: number;
  count: number;
}

export interface CodeCount {
  /** "200", or "other" for an untracked code of the class. */
  code: string;
  class: string;
  count: number;
}

export class RequestTable {
  readonly buffer: SharedArrayBuffer;
  readonly slots: number;
  private readonly cells: Float64Array;

  constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    this.cells = new Float64Array(buffer);
    this.slots = this.cells.length / REQUEST_ROW_WIDTH;
  }

  static create(slots: number): RequestTable {
    return new RequestTable(new SharedArrayBuffer(REQUEST_ROW_WIDTH * slots * Float64Array.BYTES_PER_ELEMENT));
  }

  /** The row a worker writes. */
  row(slot: number): Float64Array {
    return this.cells.subarray(slot * REQUEST_ROW_WIDTH, (slot + 1) * REQUEST_ROW_WIDTH);
  }

  /** Zeroes `n` cells from `offset` in every row: a recycled id starts from nothing (main thread). */
  zero(offset: number, n: number): void {
    for (let s = 0; s < this.slots; s++) this.cells.fill(0, s * REQUEST_ROW_WIDTH + offset, s * REQUEST_ROW_WIDTH + offset + n);
  }

  /** Sum over every worker of `n` cells from `offset`. */
  private sums(offset: number, n: number): Float64Array {
    const out = new Float64Array(n);
    for (let s = 0; s < this.slots; s++) {
      const base = s * REQUEST_ROW_WIDTH + offset;
      for (let i = 0; i < n; i++) out[i] += this.cells[base + i];
    }
    return out;
  }

  /** Responses of a block by status code, the codes seen only. */
  codes(block: number): CodeCount[] {
    const sums = this.sums(block, CODE_CELLS);
    const out: CodeCount[] = [];
    TRACKED_STATUS_CODES.forEach((code, i) => {
      if (sums[i] > 0) out.push({ code: String(code), class: statusClass(code), count: sums[i] });
    });
    for (let c = 1; c <= 5; c++) {
      const n = sums[TRACKED_STATUS_CODES.length + c - 1];
      if (n > 0) out.push({ code: 'other', class: `${c}xx`, count: n });
    }
    return out;
  }

  histogram(at: number): HistogramSnapshot {
    const sums = this.sums(at, HISTOGRAM_CELLS);
    const cumulative: number[] = [];
    let running = 0;
    for (let b = 0; b <= LATENCY_BUCKETS.length; b++) cumulative.push((running += sums[b]));
    return { cumulative, sum: sums[SUM], count: running };
  }
}
