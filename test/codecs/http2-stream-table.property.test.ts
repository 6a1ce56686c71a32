/**
 * The HTTP/2 connection's table of open streams (src/codecs/http2/stream-table.ts) against a Map:
 * ids rising by two as a connection opens them, streams closing in any order, some living long
 * (their slot is wanted again 32 streams later), more open streams than slots, lookups of ids
 * closed or never opened, and deletes of a different stream object with a live id.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StreamTable } from '../../src/codecs/http2/stream-table.ts';
import { fcParams } from '../support/fuzz.ts';

interface S { readonly id: number }

const op = fc.oneof(
  { weight: 5, arbitrary: fc.constant({ kind: 'open' as const }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('close' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('get' as const), id: fc.nat({ max: 600 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('twin' as const), pick: fc.nat() }) },
);

describe('HTTP/2 stream table', () => {
  it('finds, adds and removes streams as a Map does', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 100, maxLength: 600 }), fc.constantFrom(1, 2), (ops, first) => {
        const table = new StreamTable<S>();
        const model = new Map<number, S>();
        let next = first;
        for (const o of ops) {
          const open = [...model.values()];
          if (o.kind === 'open') {
            const s = { id: next };
            next += 2;
            table.add(s);
            model.set(s.id, s);
          } else if (o.kind === 'close' && open.length > 0) {
            const s = open[o.pick % open.length];
            expect(table.delete(s)).toBe(true);
            model.delete(s.id);
            expect(table.delete(s)).toBe(false);
          } else if (o.kind === 'twin' && open.length > 0) {
            expect(table.delete({ id: open[o.pick % open.length].id })).toBe(false);
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

  it('keeps a long-lived stream while hundreds pass through its slot, and more streams than slots', () => {
    const table = new StreamTable<S>();
    const long = { id: 1 };
    table.add(long);
    for (let id = 3; id < 1000; id += 2) {
      const s = { id };
      table.add(s);
      expect(table.get(id)).toBe(s);
      expect(table.delete(s)).toBe(true);
    }
    expect(table.get(1)).toBe(long);
    const many = Array.from({ length: 300 }, (_, i) => ({ id: 1001 + 2 * i }));
    for (const s of many) table.add(s);
    expect(table.size).toBe(301);
    for (const s of many) expect(table.get(s.id)).toBe(s);
    expect(table.get(1)).toBe(long);
    for (const s of many.reverse()) expect(table.delete(s)).toBe(true);
    expect(table.values()).toEqual([long]);
  });
});
