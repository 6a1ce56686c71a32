/**
 * Config snapshots for workers: encoded once with msgpackr into a SharedArrayBuffer, so N workers
 * read the same bytes instead of the main thread structured-cloning the config N times.
 */
import { Packr } from 'msgpackr';
import { deepFreeze } from '../config/load.ts';
import type { ConfigSnapshot, HostsUpdate } from '../workers/messages.ts';

const packr = new Packr({ useRecords: false, moreTypes: false });

export function encodeSnapshot(snapshot: ConfigSnapshot | HostsUpdate): SharedArrayBuffer {
  const bytes = packr.pack(snapshot);
  const shared = new SharedArrayBuffer(bytes.length);
  new Uint8Array(shared).set(bytes);
  return shared;
}

export function decodeSnapshot<T extends ConfigSnapshot | HostsUpdate = ConfigSnapshot>(shared: SharedArrayBuffer): T {
  // Copied out of shared memory first: a decoder must not see bytes change under it.
  return deepFreeze(packr.unpack(new Uint8Array(shared).slice()) as T);
}
