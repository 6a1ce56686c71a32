import { describe, expect, it } from 'vitest';
import { ClusterManager } from '../src/cluster/cluster-manager.ts';
import { parseConfig } from '../src/config/load.ts';
import { RetryBudget } from '../src/proxy/http/context.ts';

const config = parseConfig(`
version: 1
listeners: [{ name: l, address: "127.0.0.1:7000", cluster: c }]
clusters: [{ name: c, hosts: ["127.0.0.1:8000"], retry_budget: { budget_percent: 20, min_retry_concurrency: 3 } }]
`);

describe('retry budget', () => {
  it('allows min_retry_concurrency retries, then budget_percent of requests in flight', () => {
    const cluster = new ClusterManager(config).get('c')!;
    const budget = new RetryBudget();
    for (let i = 0; i < 10; i++) budget.requestStarted(cluster);
    // 20% of 10 = 2 < min 3: three retries may run at once.
    expect([budget.tryRetry(cluster), budget.tryRetry(cluster), budget.tryRetry(cluster), budget.tryRetry(cluster)]).toEqual([true, true, true, false]);
    for (let i = 0; i < 20; i++) budget.requestStarted(cluster);
    // 20% of 30 = 6.
    expect([budget.tryRetry(cluster), budget.tryRetry(cluster), budget.tryRetry(cluster), budget.tryRetry(cluster)]).toEqual([true, true, true, false]);
    budget.retryEnded(cluster);
    expect(budget.tryRetry(cluster)).toBe(true);
  });
});
