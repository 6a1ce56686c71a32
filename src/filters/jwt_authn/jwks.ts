/**
 * A provider's keys: a JWKS from a file or inline (read once per generation), or fetched from a
 * cluster and kept for cache_duration. A token signed by a key the cached set lacks triggers one
 * early refetch (key rotation), at most every REFETCH_COOLDOWN_MS, so a flood of forged `kid`s
 * cannot make Shuttle hammer the JWKS server.
 */
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import type { FilterBuildContext } from '../api.ts';
import type { JwtProviderConfig } from './config.ts';

const REFETCH_COOLDOWN_MS = 10_000;
/** A JWKS larger than this is refused (hostile or broken server). */
const MAX_JWKS_BYTES = 1024 * 1024;

export interface KeySource {
  /** A key resolver for jose, or undefined while no keys could be had. */
  keys(): Promise<JWTVerifyGetKey | undefined>;
  /** A token named a key we lack: fetch again soon (remote sets only). */
  missingKey(): void;
  close(): void;
}

function parseJwks(text: string): JWTVerifyGetKey {
  const jwks = JSON.parse(text) as JSONWebKeySet;
  if (!jwks || !Array.isArray(jwks.keys)) throw new Error('not a JWKS (no "keys" array)');
  return createLocalJWKSet(jwks);
}

export function localKeys(cfg: NonNullable<JwtProviderConfig['local_jwks']>): KeySource {
  const set = parseJwks(cfg.inline_string ?? readFileSync(cfg.filename!, 'utf8'));
  return { keys: async () => set, missingKey: () => {}, close: () => {} };
}

export function remoteKeys(cfg: NonNullable<JwtProviderConfig['remote_jwks']>, ctx: FilterBuildContext): KeySource {
  const url = new URL(cfg.uri);
  let set: JWTVerifyGetKey | undefined;
  let fetchedAt = 0;
  let inFlight: Promise<void> | undefined;
  let lastAttempt = 0;
  let closed = false;
  const fetchNow = (): Promise<void> => {
    lastAttempt = Date.now();
    inFlight ??= (async () => {
      try {
        if (!ctx.fetch) throw new Error('no fetcher');
        const res = await ctx.fetch(cfg.cluster, url.pathname + url.search, cfg.timeout, url.host);
        if (res.status !== 200) throw new Error(`status ${res.status}`);
        if (res.body.length > MAX_JWKS_BYTES) throw new Error('JWKS too large');
        set = parseJwks(res.body.toString('utf8'));
        fetchedAt = Date.now();
      } catch (err) {
        if (!closed) ctx.logger.warn({ uri: cfg.uri, cluster: cfg.cluster, err: (err as Error).message }, 'jwt_authn: could not fetch the JWKS; the keys held stay');
      } finally {
        inFlight = undefined;
      }
    })();
    return inFlight;
  };
  return {
    async keys() {
      const stale = Date.now() - fetchedAt > cfg.cache_duration;
      if (set === undefined || stale) {
        // Without keys, wait for them; with stale keys, use them while fresh ones come.
        const p = Date.now() - lastAttempt > 1000 || set === undefined ? fetchNow() : inFlight;
        if (set === undefined) await p;
      }
      return set;
    },
    missingKey() {
      if (Date.now() - lastAttempt > REFETCH_COOLDOWN_MS) void fetchNow();
    },
    close() {
      closed = true;
    },
  };
}
