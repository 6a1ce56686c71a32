/**
 * The memo of pools found per (cluster object, key, host) (src/stream/host-pools.ts FoundPools):
 * a hit only for the same cluster object, the same key and the same host; nothing after clear().
 */
import { describe, expect, it } from 'vitest';
import { FoundPools } from '../src/stream/host-pools.ts';

describe('FoundPools', () => {
  it('finds a pool only for the cluster object, key and host it was found for, and forgets all at clear()', () => {
    const found = new FoundPools<string, number>();
    const clusterA = {};
    const clusterB = {};
    const optionsX = {};
    const optionsY = {};
    let extras = 0;
    const extra = () => ++extras;
    expect(found.get(clusterA, optionsX, 3)).toBeUndefined();
    found.set(clusterA, optionsX, 3, 'a-x-3', extra);
    found.set(clusterA, optionsX, 700, 'a-x-700', extra);
    expect(found.get(clusterA, optionsX, 3)).toEqual({ pool: 'a-x-3', extra: 1 });
    expect(found.get(clusterA, optionsX, 700)).toEqual({ pool: 'a-x-700', extra: 1 });
    expect(extras).toBe(1); // once per cluster entry
    expect(found.get(clusterA, optionsX, 4)).toBeUndefined();
    expect(found.get(clusterA, optionsY, 3)).toBeUndefined();
    expect(found.get(clusterB, optionsX, 3)).toBeUndefined();
    // Another key for the same cluster replaces its entry (a cluster serves one listener's options at a time here).
    found.set(clusterA, optionsY, 3, 'a-y-3', extra);
    expect(found.get(clusterA, optionsY, 3)).toEqual({ pool: 'a-y-3', extra: 2 });
    expect(found.get(clusterA, optionsX, 3)).toBeUndefined();
    found.clear();
    expect(found.get(clusterA, optionsY, 3)).toBeUndefined();
  });
});
