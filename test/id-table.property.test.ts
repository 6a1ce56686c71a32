/**
 * The table of entries by rising id (src/stream/id-table.ts: HTTP/2 streams, ids step 2; RPC calls
 * in flight, step 1) against a Map: ids handed out in order, entries ending in any order, some
 * living long (their slot is wanted again 64 ids later), more entries than slots, lookups of ids
 * ended or never handed out.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IdTable } from '../src/stream/id-table.ts';
import { fcParams } from './support/fuzz.ts';

interface S { readonly id: number }

const op = fc.oneof(
  { weight: 5, arbitrary: fc.constant({ kind: 'open' as const }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('close' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('get' as const), id: fc.nat({ max: 600 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('again' as const), pick: fc.nat() }) },
);

describe('IdTable', () => {
  it('finds, adds and removes streams as a Map does', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 100, maxLength: 600 }), fc.constantFrom(1, 2), fc.constantFrom(1, 2), (ops, first, step) => {
        const table = new IdTable<S>(step as 1 | 2);
        const model = new Map<number, S>();
        let next = first;
        for (const o of ops) {
          const open = [...model.values()];
          if (o.kind === 'open') {
            const s = { id: next };
            next += step;
            expect(table.has(s.id)).toBe(false);
            table.set(s.id, s);
            model.set(s.id, s);
          } else if (o.kind === 'close' && open.length > 0) {
            const s = open[o.pick % open.length];
            expect(table.delete(s.id)).toBe(true);
            model.delete(s.id);
            expect(table.delete(s.id)).toBe(false);
            expect(table.has(s.id)).toBe(false);
          } else if (o.kind === 'again' && open.length > 0) {
            const s = open[o.pick % open.length];
            expect(table.has(s.id)).toBe(true);
            expect(table.get(s.id)).toBe(s);
          } else if (o.kind === 'get') {
            expect(table.get(o.id)).toBe(model.get(o.id));
          }
          expect(table.size).toBe(model.size);
        }
        for (const [id, s] of model) expect(table.get(id)).toBe(s);
        expect(new Set(table.values())).toEqual(new Set(model.values()));
        expect(table.values().length).toBe(model.size);
      }),
      fcParams(300),
    );
  });

  it('grows its ring for many entries in flight, keeping every entry (those in the Map too)', () => {
    const table = new IdTable<S>(1);
    const long = { id: 5 };
    table.set(5, long);
    // Ids wrap around the first ring while `long` holds its slot: some go to the Map, then the ring grows.
    const live = Array.from({ length: 700 }, (_, i) => ({ id: 6 + i }));
    for (const s of live) {
      table.set(s.id, s);
      expect(table.get(s.id)).toBe(s);
    }
    expect(table.size).toBe(701);
    expect(table.get(5)).toBe(long);
    for (const s of live) expect(table.get(s.id)).toBe(s);
    for (const s of live.filter((_, i) => i % 2 === 0)) expect(table.delete(s.id)).toBe(true);
    expect(new Set(table.values())).toEqual(new Set([long, ...live.filter((_, i) => i % 2 === 1)]));
  });

  it('keeps a long-lived stream while hundreds pass through its slot, and more streams than slots', () => {
    const table = new IdTable<S>(2);
    const long = { id: 1 };
    table.set(1, long);
    for (let id = 3; id < 1000; id += 2) {
      const s = { id };
      table.set(id, s);
      expect(table.get(id)).toBe(s);
      expect(table.delete(id)).toBe(true);
    }
    expect(table.get(1)).toBe(long);
    const many = Array.from({ length: 300 }, (_, i) => ({ id: 1001 + 2 * i }));
    for (const s of many) table.set(s.id, s);
    expect(table.size).toBe(301);
    for (const s of many) expect(table.get(s.id)).toBe(s);
    expect(table.get(1)).toBe(long);
    for (const s of many.reverse()) expect(table.delete(s.id)).toBe(true);
    expect(table.values()).toEqual([long]);
    table.clear();
    expect(table.size).toBe(0);
    expect(table.get(1)).toBe(undefined);
    // Id 0 (where an RPC id space wraps) is an id like any other.
    table.set(0, long);
    expect(table.get(0)).toBe(long);
  });
});
