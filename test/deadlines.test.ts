/**
 * Deadline queues (src/stream/deadlines.ts) on a fake clock: exact expiry times, no waiting.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Deadline, DeadlineQueue } from '../src/stream/deadlines.ts';

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
});

afterEach(() => {
  vi.useRealTimers();
});

describe('DeadlineQueue', () => {
  it('expires deadlines in arming order, each at its own time', () => {
    const q = new DeadlineQueue(100);
    const fired: [string, number][] = [];
    const a = new Deadline(() => fired.push(['a', performance.now()]));
    const b = new Deadline(() => fired.push(['b', performance.now()]));
    a.arm(q);
    vi.advanceTimersByTime(40);
    b.arm(q);
    vi.advanceTimersByTime(200);
    expect(fired.map(([n]) => n)).toEqual(['a', 'b']);
    expect(fired[0][1]).toBeCloseTo(100, -1);
    expect(fired[1][1]).toBeCloseTo(140, -1);
  });

  it('never expires a cancelled deadline, and re-arming restarts it', () => {
    const q = new DeadlineQueue(100);
    let fired = 0;
    const d = new Deadline(() => fired++);
    d.arm(q);
    vi.advanceTimersByTime(60);
    d.cancel();
    vi.advanceTimersByTime(100);
    expect(fired).toBe(0);
    expect(d.armed).toBe(false);
    d.arm(q);
    vi.advanceTimersByTime(60);
    d.arm(q); // again: the clock restarts from here
    vi.advanceTimersByTime(60);
    expect(fired).toBe(0);
    vi.advanceTimersByTime(41);
    expect(fired).toBe(1);
  });

  // Regression: a deadline armed by an expiring owner (a retry arming its per-try timeout, a
  // pipelined request arming its route timeout) scheduled the queue's timer for a full duration,
  // and the deadlines already waiting fired that much late.
  it('keeps the others on time when an expiring owner arms a new deadline on the same queue', () => {
    const q = new DeadlineQueue(200);
    const firedAt = new Map<string, number>();
    const a: Deadline = new Deadline(() => {
      if (!firedAt.has('a')) a.arm(q);
      firedAt.set(firedAt.has('a') ? 'a2' : 'a', performance.now());
    });
    const b = new Deadline(() => firedAt.set('b', performance.now()));
    a.arm(q);
    vi.advanceTimersByTime(100);
    b.arm(q);
    vi.advanceTimersByTime(500);
    expect(firedAt.get('a')).toBeCloseTo(200, -1);
    expect(firedAt.get('b')).toBeCloseTo(300, -1);
    expect(firedAt.get('a2')).toBeCloseTo(400, -1);
  });

  it('waits out deadlines longer than a Node timer can hold (2^31-1 ms)', () => {
    const q = new DeadlineQueue(2 ** 32);
    let fired = 0;
    new Deadline(() => fired++).arm(q);
    vi.advanceTimersByTime(2 ** 31);
    expect(fired).toBe(0);
    vi.advanceTimersByTime(2 ** 31 + 10);
    expect(fired).toBe(1);
  });

  it('goes on expiring the others when an owner throws', () => {
    const q = new DeadlineQueue(50);
    const fired: string[] = [];
    const bad = new Deadline(() => {
      throw new Error('owner bug');
    });
    const good = new Deadline(() => fired.push('good'));
    bad.arm(q);
    good.arm(q);
    const errors: unknown[] = [];
    const original = globalThis.queueMicrotask;
    globalThis.queueMicrotask = (fn) => {
      try {
        fn();
      } catch (err) {
        errors.push(err);
      }
    };
    try {
      vi.advanceTimersByTime(60);
    } finally {
      globalThis.queueMicrotask = original;
    }
    expect(fired).toEqual(['good']);
    expect(errors).toHaveLength(1);
  });
});
