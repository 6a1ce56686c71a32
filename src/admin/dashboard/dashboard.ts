/**
 * The live dashboard on the admin port: GET /dashboard serves one self-contained page (no CDN, no
 * framework: it works offline), which polls GET /dashboard/data every second.
 *
 * The page's only script and style are inline, allowed by their hashes in a strict content
 * security policy: nothing else may run or load, the page may only fetch from the admin itself,
 * and no other site may frame it. It only reads; it has no control that changes state.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AdminServer } from '../admin-server.ts';
import type { AdminState } from '../routes.ts';
import type { ProcessFacts } from '../server-info.ts';
import { dashboardData } from './data.ts';

const PAGE = readFileSync(new URL('./dashboard.html', import.meta.url), 'utf8');

function inlineHash(tag: 'script' | 'style'): string {
  const m = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(PAGE);
  if (!m) throw new Error(`dashboard.html has no <${tag}>`);
  return `'sha256-${createHash('sha256').update(m[1], 'utf8').digest('base64')}'`;
}

const SECURITY_HEADERS = {
  'content-security-policy': [
    "default-src 'none'", `script-src ${inlineHash('script')}`, `style-src ${inlineHash('style')}`, "connect-src 'self'",
    "img-src 'none'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
  ].join('; '),
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

export function registerDashboard(admin: AdminServer, s: AdminState, facts: ProcessFacts): void {
  admin
    .route('GET', '/dashboard', () => ({ status: 200, body: PAGE, contentType: 'text/html; charset=utf-8', headers: SECURITY_HEADERS }), 'live dashboard (open in a browser): workers, listeners, clusters and hosts, refreshed every second')
    .route('GET', '/dashboard/data', () => ({ status: 200, body: dashboardData(s, facts) }), 'the figures the dashboard polls (JSON, cumulative: rates come from two polls)');
}
