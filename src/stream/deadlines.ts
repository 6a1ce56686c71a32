/**
 * Per-request and per-connection timeouts without a Node timer each.
 *
 * A proxy arms and cancels several timeouts per request (route timeout, waiting for the next
 * request head, an upstream connection's idle time) and almost never lets one fire. With
 * `setTimeout`/`clearTimeout` each of those allocates a Timeout, reads the loop clock through C++
 * and relinks timer lists; measured on the HTTP path that was ~3% of the worker's CPU.
 *
 * Here all deadlines of one duration sit in one FIFO list (same duration: arming order is deadline
 * order), like libuv's and Node's own per-duration lists, but the entries are owned and reused by
 * their owners, so arming and cancelling are O(1) unlinks with no allocation. One Node timer per
 * duration wakes up for the earliest deadline; cancelled entries need no timer work at all.
 *
 *   Deadlines ── queue(ms) ─▶ DeadlineQueue ◀── Deadline.arm(queue) / cancel()
 *                              head … tail        one unref'd Node timer for the head
 */
import { approximateNow } from './clock.ts';

/**
 * An object that hears its deadline expire by a method, instead of a closure: what a connection
 * keeps for its whole life (idle and head timers) costs no closure and context per connection.
 */
export interface DeadlineOwner {
  deadlineExpired(deadline: Deadline): void;
}

export class Deadline {
  /** Absolute expiry, performance.now() milliseconds. */
  at = 0;
  prev: Deadline | null = null;
  next: Deadline | null = null;
  queue: DeadlineQueue | null = null;
  private readonly onExpire: (() => void) | DeadlineOwner;

  constructor(onExpire: (() => void) | DeadlineOwner) {
    this.onExpire = onExpire;
  }

  get armed(): boolean {
    return this.queue !== null;
  }

  /** (Re)starts this deadline on `queue`: it expires `queue.durationMs` from now. */
  arm(queue: DeadlineQueue): void {
    if (this.queue !== null) this.queue.unlink(this);
    queue.append(this);
  }

  cancel(): void {
    if (this.queue !== null) this.queue.unlink(this);
  }

  /** Called by the queue, after unlinking. */
  expire(): void {
    const e = this.onExpire;
    if (typeof e === 'function') e();
    else e.deadlineExpired(this);
  }
}

export class DeadlineQueue {
  readonly durationMs: number;
  private head: Deadline | null = null;
  private tail: Deadline | null = null;
  private timer: NodeJS.Timeout | undefined;
  /** Inside fire(): deadlines armed by expiring owners wait for fire() to schedule the timer. */
  private firing = false;

  constructor(durationMs: number) {
    this.durationMs = durationMs;
  }

  append(d: Deadline): void {
    d.at = approximateNow() + this.durationMs; // (within a read, the read's time: expiry never late)
    d.queue = this;
    d.prev = this.tail;
    d.next = null;
    if (this.tail) this.tail.next = d;
    else this.head = d;
    this.tail = d;
    // A timer already waiting fires no later than this deadline (FIFO); it re-arms itself.
    if (this.timer === undefined && !this.firing) this.schedule(this.durationMs);
  }

  unlink(d: Deadline): void {
    if (d.prev) d.prev.next = d.next;
    else this.head = d.next;
    if (d.next) d.next.prev = d.prev;
    else this.tail = d.prev;
    d.prev = d.next = null;
    d.queue = null;
  }

  private schedule(ms: number): void {
    // A Node timer holds at most 2^31-1 ms; a longer deadline is looked at again then.
    this.timer = setTimeout(() => this.fire(), Math.min(0x7fffffff, Math.max(1, Math.ceil(ms))));
    this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    this.firing = true;
    const now = performance.now();
    let d: Deadline | null;
    try {
      // +0.5 ms: a Node timer may fire a fraction early against performance.now().
      while ((d = this.head) !== null && d.at <= now + 0.5) {
        this.unlink(d);
        try {
          d.expire();
        } catch (err) {
          // One owner's failure must not stop the others' timeouts; surface it like a timer would.
          queueMicrotask(() => {
            throw err;
          });
        }
      }
    } finally {
      this.firing = false;
    }
    // The earliest deadline left (some may have been armed by the owners just expired).
    if (this.head !== null) this.schedule(this.head.at - now);
  }
}

/** A worker's deadline queues, one per distinct duration. */
export class Deadlines {
  private readonly queues = new Map<number, DeadlineQueue>();

  queue(durationMs: number): DeadlineQueue {
    let q = this.queues.get(durationMs);
    if (q === undefined) this.queues.set(durationMs, (q = new DeadlineQueue(durationMs)));
    return q;
  }
}

/** The worker thread's deadlines (one event loop, one set of queues). */
export const deadlines = new Deadlines();
