/**
 * Policy state shared by every worker thread of the process, so that a limit means the same
 * whatever the thread count (one SharedArrayBuffer, made once by the main thread):
 *
 *   [ token buckets: GROUPS × WAYS slots ][ breaker totals: clusters × 2 priorities × 4 ]
 *   [ breaker rows: one per worker slot, same shape as the totals ]
 *
 * Token buckets (local_ratelimit) live in a set-associative table: a key (filter identity +
 * descriptor value) hashes to a group of WAYS slots guarded by one spin lock; a new key takes a
 * free slot or the one idle longest (its bucket would have refilled anyway). The lock is held for
 * a few loads and stores, never across a call.
 *
 * Circuit breakers count what is open now: `acquire` adds to the total with Atomics and takes it
 * back if that overshot the limit, so the limit is exact across threads. Each worker also counts
 * in its own row: when a worker dies with requests open, the main thread subtracts its row from
 * the totals (`reclaim`) and nothing leaks.
 */
import { MAX_CLUSTERS, MAX_WORKER_SLOTS } from '../../shared/directory.ts';

const WAYS = 8;
const GROUPS = 2048;
const SLOTS = WAYS * GROUPS;
/** Int32 words per slot: key high, key low, used. Float64 words per slot: tokens, last refill (ms). */
const SLOT_INTS = 3;
const SLOT_FLOATS = 2;

export const BREAKER_RESOURCES = ['connections', 'pending_requests', 'requests', 'retries'] as const;
export type BreakerResource = (typeof BREAKER_RESOURCES)[number];
export type Priority = 'default' | 'high';
const RESOURCE_INDEX: Record<BreakerResource, number> = { connections: 0, pending_requests: 1, requests: 2, retries: 3 };
const BREAKER_CELLS = MAX_CLUSTERS * 2 * BREAKER_RESOURCES.length;

const LOCKS_BYTES = GROUPS * 4;
const KEYS_BYTES = SLOTS * SLOT_INTS * 4;
const FLOATS_BYTES = SLOTS * SLOT_FLOATS * 8;
const BREAKER_BYTES = BREAKER_CELLS * 4 * (1 + MAX_WORKER_SLOTS);

/** Milliseconds on a clock every thread shares (performance.now() starts per thread). */
export const sharedNow = (): number => performance.timeOrigin + performance.now();

/** A 64-bit FNV-1a of a string, as two 32-bit halves. */
function hash64(s: string): [number, number] {
  let h1 = 0x811c9dc5;
  let h2 = 0xcbf29ce4;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x01000193) ^ (h1 >>> 15);
  }
  return [h1 | 0, h2 | 1];
}

export interface TokenBucketSpec {
  readonly maxTokens: number;
  /** Tokens added per millisecond (continuous refill). */
  readonly perMs: number;
}

export class PolicyTable {
  readonly buffer: SharedArrayBuffer;
  private readonly locks: Int32Array;
  private readonly keys: Int32Array;
  private readonly floats: Float64Array;
  private readonly totals: Int32Array;
  private readonly rows: Int32Array;
  private readonly slot: number;

  /** `slot`: the worker slot whose row this thread writes (-1 on the main thread). */
  constructor(buffer: SharedArrayBuffer, slot = -1) {
    this.buffer = buffer;
    this.slot = slot;
    let at = 0;
    this.locks = new Int32Array(buffer, at, GROUPS);
    at += LOCKS_BYTES;
    this.keys = new Int32Array(buffer, at, SLOTS * SLOT_INTS);
    at += KEYS_BYTES;
    this.floats = new Float64Array(buffer, at, SLOTS * SLOT_FLOATS);
    at += FLOATS_BYTES;
    this.totals = new Int32Array(buffer, at, BREAKER_CELLS);
    at += BREAKER_CELLS * 4;
    this.rows = new Int32Array(buffer, at, BREAKER_CELLS * MAX_WORKER_SLOTS);
  }

  static create(): PolicyTable {
    return new PolicyTable(new SharedArrayBuffer(LOCKS_BYTES + KEYS_BYTES + FLOATS_BYTES + BREAKER_BYTES));
  }

  // ---- token buckets ----------------------------------------------------------------------------

  /**
   * Takes one token from the bucket named `key` (created full). Returns the tokens left (≥ 0), or
   * -1 when there was none.
   */
  take(key: string, spec: TokenBucketSpec, now = sharedNow()): number {
    const [k1, k2] = hash64(key);
    const group = (k1 >>> 0) % GROUPS;
    this.lock(group);
    try {
      const first = group * WAYS;
      let slot = -1;
      let oldest = -1;
      let oldestAt = Infinity;
      for (let i = first; i < first + WAYS; i++) {
        const o = i * SLOT_INTS;
        if (this.keys[o + 2] === 0) {
          if (slot < 0) slot = i;
          continue;
        }
        if (this.keys[o] === k1 && this.keys[o + 1] === k2) {
          return this.takeFrom(i, spec, now);
        }
        const last = this.floats[i * SLOT_FLOATS + 1];
        if (last < oldestAt) {
          oldestAt = last;
          oldest = i;
        }
      }
      // A new bucket: a free slot, else the one idle longest.
      if (slot < 0) slot = oldest;
      const o = slot * SLOT_INTS;
      this.keys[o] = k1;
      this.keys[o + 1] = k2;
      this.keys[o + 2] = 1;
      this.floats[slot * SLOT_FLOATS] = spec.maxTokens;
      this.floats[slot * SLOT_FLOATS + 1] = now;
      return this.takeFrom(slot, spec, now);
    } finally {
      Atomics.store(this.locks, group, 0);
    }
  }

  private takeFrom(slot: number, spec: TokenBucketSpec, now: number): number {
    const f = slot * SLOT_FLOATS;
    const elapsed = Math.max(0, now - this.floats[f + 1]);
    let tokens = Math.min(spec.maxTokens, this.floats[f] + elapsed * spec.perMs);
    this.floats[f + 1] = Math.max(now, this.floats[f + 1]);
    if (tokens < 1) {
      this.floats[f] = tokens;
      return -1;
    }
    tokens -= 1;
    this.floats[f] = tokens;
    return Math.floor(tokens);
  }

  private lock(group: number): void {
    // Held for a handful of loads and stores: spinning beats sleeping.
    while (Atomics.compareExchange(this.locks, group, 0, 1) !== 0) {
      // (Another thread holds it for nanoseconds.)
    }
  }

  // ---- circuit breakers -------------------------------------------------------------------------

  private cell(cluster: number, priority: Priority, resource: BreakerResource): number {
    return (cluster * 2 + (priority === 'high' ? 1 : 0)) * BREAKER_RESOURCES.length + RESOURCE_INDEX[resource];
  }

  /** Opens one of `resource` if fewer than `max` are open across all threads. */
  acquire(cluster: number, priority: Priority, resource: BreakerResource, max: number): boolean {
    const c = this.cell(cluster, priority, resource);
    if (Atomics.add(this.totals, c, 1) >= max) {
      Atomics.sub(this.totals, c, 1);
      return false;
    }
    if (this.slot >= 0) Atomics.add(this.rows, this.slot * BREAKER_CELLS + c, 1);
    return true;
  }

  release(cluster: number, priority: Priority, resource: BreakerResource): void {
    const c = this.cell(cluster, priority, resource);
    Atomics.sub(this.totals, c, 1);
    if (this.slot >= 0) Atomics.sub(this.rows, this.slot * BREAKER_CELLS + c, 1);
  }

  /** Open now across all threads. */
  open(cluster: number, priority: Priority, resource: BreakerResource): number {
    return Atomics.load(this.totals, this.cell(cluster, priority, resource));
  }

  /** Nothing of the cluster's is open on any thread (its id may be recycled). */
  clusterIdle(cluster: number): boolean {
    for (let c = this.cell(cluster, 'default', 'connections'); c < this.cell(cluster + 1, 'default', 'connections'); c++) if (Atomics.load(this.totals, c) !== 0) return false;
    return true;
  }

  /** A worker slot's thread is gone: what it held open is released (main thread). */
  reclaim(slot: number): void {
    const base = slot * BREAKER_CELLS;
    for (let c = 0; c < BREAKER_CELLS; c++) {
      const held = Atomics.exchange(this.rows, base + c, 0);
      if (held !== 0) Atomics.sub(this.totals, c, held);
    }
  }
}
