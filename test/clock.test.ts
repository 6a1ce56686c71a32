import { describe, expect, it } from 'vitest';
import { approximateNow } from '../src/stream/clock.ts';
import { beginBatch, endBatch } from '../src/stream/socket-output.ts';

const spin = (ms: number): void => {
  const until = performance.now() + ms;
  while (performance.now() < until);
};

describe('approximateNow (the read batch clock)', () => {
  it('reads the clock once per read batch, and on every call outside one', () => {
    const before = approximateNow();
    spin(2);
    beginBatch();
    let first: number;
    try {
      first = approximateNow();
      expect(first).toBeGreaterThanOrEqual(before + 2);
      spin(2);
      beginBatch(); // a nested read handler shares the outer batch's time
      try {
        expect(approximateNow()).toBe(first);
      } finally {
        endBatch();
      }
      expect(approximateNow()).toBe(first);
    } finally {
      endBatch();
    }
    // Outside the batch the clock moves again, never behind the batch's time.
    const after = approximateNow();
    expect(after).toBeGreaterThanOrEqual(first + 2);
    spin(1);
    expect(approximateNow()).toBeGreaterThan(after);
  });

  it('takes a new reading for the next batch', () => {
    beginBatch();
    const a = approximateNow();
    endBatch();
    spin(1);
    beginBatch();
    const b = approximateNow();
    endBatch();
    expect(b).toBeGreaterThan(a);
  });
});
