/**
 * Stable ids (src/shared/directory.ts): kept across configs, retired when an entity leaves,
 * recycled only after the quarantine and when nothing uses the id, and never handed out twice.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.ts';
import { Directory, MAX_HOSTS } from '../src/shared/directory.ts';

/** One cluster with hosts 10.0.0.x:80 for each x in `hosts`. */
function config(hosts: number[]) {
  const list = hosts.map((x) => `      - "10.${(x >> 16) & 255}.${(x >> 8) & 255}.${x & 255}:80"`).join('\n');
  return parseConfig(`version: 1\nlisteners:\n  - name: tcp\n    address: "127.0.0.1:0"\n    protocol: tcp\n    cluster: c\nclusters:\n  - name: c\n    hosts:\n${list}\n`);
}
const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

describe('Directory', () => {
  it('keeps an id while its entity stays, and gives it back when the entity returns before being recycled', () => {
    const d = new Directory(60_000);
    const a = d.assign(config([1, 2, 3]), { now: 0 }).hosts[0];
    expect(a).toEqual([0, 1, 2]);
    expect(d.assign(config([3, 1]), { now: 1 }).hosts[0]).toEqual([2, 0]);
    expect(d.lastChanges.retired.hosts).toEqual([1]);
    expect(d.assign(config([2, 4]), { now: 2 }).hosts[0]).toEqual([1, 3]);
    expect(d.lastChanges.retired.hosts.sort()).toEqual([0, 2]);
    expect(d.lastChanges.recycled.hosts).toEqual([]);
  });

  it('recycles retired ids once the table is full: only after the quarantine, only when idle, oldest first', () => {
    const d = new Directory(1_000);
    const first = d.assign(config(range(0, MAX_HOSTS)), { now: 0 }).hosts[0];
    expect(new Set(first).size).toBe(MAX_HOSTS);
    // Two hosts leave at t=0 and t=500.
    d.assign(config(range(1, MAX_HOSTS - 1)), { now: 0 });
    d.assign(config(range(1, MAX_HOSTS - 2)), { now: 500 });
    const two = [...range(1, MAX_HOSTS - 2), MAX_HOSTS + 1, MAX_HOSTS + 2];
    // Within the quarantine: refused, and nothing changed.
    expect(() => d.assign(config(two), { now: 900 })).toThrow(/no room for 2 more hosts \(at most 16384 at once\)/);
    // Past the first one's quarantine only: still one short.
    expect(() => d.assign(config(two), { now: 1_200 })).toThrow(/no room for 1 more hosts/);
    // Both past it, but one still has an open connection (not idle).
    expect(() => d.assign(config(two), { now: 1_600, idle: { hosts: (id) => id !== MAX_HOSTS - 1 } })).toThrow(/no room for 1 more hosts/);
    const ids = d.assign(config(two), { now: 1_600 }).hosts[0];
    expect(ids.slice(-2)).toEqual([0, MAX_HOSTS - 1]);
    expect(d.lastChanges.recycled.hosts).toEqual([0, MAX_HOSTS - 1]);
    expect(new Set(ids).size).toBe(ids.length);
    // The old entity of a recycled id is a stranger now: it gets a new id, never the recycled one.
    expect(() => d.assign(config(range(0, MAX_HOSTS - 1)), { now: 1_700 })).toThrow(/no room/);
  });

  it('turns over far more distinct hosts than the table holds, as EDS churn does over a process life', () => {
    const d = new Directory(0);
    let seen = 0;
    for (let round = 0; round < 40; round++) {
      const ids = d.assign(config(range(round * 1_000, 1_000)), { now: round }).hosts[0];
      expect(new Set(ids).size).toBe(1_000);
      seen += 1_000;
    }
    expect(seen).toBeGreaterThan(MAX_HOSTS * 2);
  });

  it('does not recycle a listener, cluster or route id whose key is back in the same config', () => {
    const d = new Directory(0);
    d.assign(config([1]), { now: 0 });
    const again = d.assign(config([1]), { now: 10 });
    expect(again.clusters).toEqual([0]);
    expect(again.listeners).toEqual([0]);
    expect(d.lastChanges.recycled.clusters).toEqual([]);
  });
});
