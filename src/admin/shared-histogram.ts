/**
 * A Prometheus histogram whose buckets live in shared memory (the workers' request table), for
 * prom-client's registry. prom-client's own Histogram can only observe values one by one in this
 * thread; this one reports, at scrape, bucket counts already summed over every worker. It plugs
 * into the registry through the interface the registry reads (`get()`), as any metric does.
 */
import type { Metric, Registry } from 'prom-client';
import { LATENCY_BUCKETS, type HistogramSnapshot } from '../shared/request-table.ts';

export interface HistogramSeries {
  labels: Record<string, string>;
  histogram: HistogramSnapshot;
}

interface MetricValue {
  metricName: string;
  labels: Record<string, string | number>;
  value: number;
}

const LE = [...LATENCY_BUCKETS.map(String), '+Inf'];

export class SharedHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series: () => HistogramSeries[];

  constructor(register: Registry, opts: { name: string; help: string; series: () => HistogramSeries[] }) {
    this.name = opts.name;
    this.help = opts.help;
    this.series = opts.series;
    register.registerMetric(this as unknown as Metric);
  }

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: MetricValue[] }> {
    const values: MetricValue[] = [];
    for (const { labels, histogram } of this.series()) {
      histogram.cumulative.forEach((count, i) => values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: LE[i] }, value: count }));
      values.push({ metricName: `${this.name}_sum`, labels, value: histogram.sum });
      values.push({ metricName: `${this.name}_count`, labels, value: histogram.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  // What prom-client's registry may call on any metric.
  reset(): void {}
}
