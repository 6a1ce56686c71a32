/** The config dump's own-shape encoding: every example round-trips; secrets and only secrets are redacted. */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configForDump, formatDuration, redact } from '../src/admin/config-dump.ts';
import { parseConfig } from '../src/config/load.ts';

const EXAMPLES = new URL('../examples/', import.meta.url);

describe('config dump', () => {
  it('writes durations with the largest unit that is exact', () => {
    expect([0, 1, 250, 1000, 1500, 60_000, 90_000, 3_600_000, 5_400_000].map(formatDuration)).toEqual(['0s', '1ms', '250ms', '1s', '1500ms', '1m', '90s', '1h', '90m']);
  });

  for (const name of readdirSync(EXAMPLES).filter((f) => /\.(ya?ml|json)$/.test(f))) {
    it(`examples/${name}: the dump parses back to the same config`, () => {
      const config = parseConfig(readFileSync(new URL(name, EXAMPLES), 'utf8'), name);
      const dump = configForDump(config, `/etc/shuttle/${name}`);
      expect(JSON.stringify(dump)).not.toMatch(/"address":\{"host"/);
      expect(parseConfig(JSON.stringify(dump), 'dump.json')).toEqual(config);
    });
  }

  it('redacts keys that name a secret, not keys that contain the word', () => {
    expect(redact({
      tls: { private_key: 'k', cert: 'c' }, auth: [{ token: 't', user: 'u', client_secret: 's', api_key: 'a' }], password: 'p',
      token_bucket: { max_tokens: 10, tokens_per_fill: 1 }, credentials: 'c', allow_credentials: true, secrets: { token: 't' },
    })).toEqual({
      tls: { private_key: '[redacted]', cert: 'c' }, auth: [{ token: '[redacted]', user: 'u', client_secret: '[redacted]', api_key: '[redacted]' }], password: '[redacted]',
      token_bucket: { max_tokens: 10, tokens_per_fill: 1 }, credentials: '[redacted]', allow_credentials: true, secrets: { token: '[redacted]' },
    });
  });
});
