/**
 * The memo of pools found per (cluster object, key, host) (src/stream/host-pools.ts FoundPools):
 * a hit only for the same cluster object, the same key and the same host; nothing after clear().
 */
import { describe, expect, it } from 'vitest';
import { FoundPools } from '../src/stream/host-pools.ts';

describe('FoundPools', () => {
  it('finds a pool only for the cluster object, key and host it was found for, and forgets all at clear()', () => {
    const found = new FoundPools<string>();
    const clusterA = {};
    const clusterB = {};
    const optionsX = {};
    const optionsY = {};
    expect(found.get(clusterA, optionsX, 3)).toBeUndefined();
    found.set(clusterA, optionsX, 3, 'a-x-3');
    found.set(clusterA, optionsX, 700, 'a-x-700');
    expect(found.get(clusterA, optionsX, 3)).toBe('a-x-3');
    expect(found.get(clusterA, optionsX, 700)).toBe('a-x-700');
    expect(found.get(clusterA, optionsX, 4)).toBeUndefined();
    expect(found.get(clusterA, optionsY, 3)).toBeUndefined();
    expect(found.get(clusterB, optionsX, 3)).toBeUndefined();
    // Another key for the same cluster replaces its entry (a cluster serves one listener's options at a time here).
    found.set(clusterA, optionsY, 3, 'a-y-3');
    expect(found.get(clusterA, optionsY, 3)).toBe('a-y-3');
    expect(found.get(clusterA, optionsX, 3)).toBeUndefined();
    found.clear();
    expect(found.get(clusterA, optionsY, 3)).toBeUndefined();
  });
});
