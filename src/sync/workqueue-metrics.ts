// client-go's workqueue metrics, with controller-runtime's names, labels and buckets, for the sync's reconcile loop.
//
// The loop (index.ts) has no queue object, but it is a work queue of one item, the whole topology: a trigger adds
// the item (once: more triggers before the reconcile starts only add reasons, as client-go drops a duplicate add),
// the reconcile takes it, a failed one is retried with backoff. Queue duration is the wait from the first trigger to
// the start of the reconcile that serves it, debounce window included; work duration is the reconcile.

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** controller-runtime's ExponentialBuckets(10e-9, 10, 12): 10 ns to 1,000 s. */
const BUCKETS = [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.1, 1, 10, 100, 1000];

export class WorkqueueMetrics {
  private readonly labels: { name: string; controller: string };
  private readonly now: () => number;
  private readonly depth: Gauge<'name' | 'controller'>;
  private readonly adds: Counter<'name' | 'controller'>;
  private readonly queueDuration: Histogram<'name' | 'controller'>;
  private readonly workDuration: Histogram<'name' | 'controller'>;
  private readonly retries: Counter<'name' | 'controller'>;
  /** performance.now() when the item was added, while it waits. */
  private queuedAt: number | undefined;
  /** performance.now() when the reconcile started, while it runs. */
  private startedAt: number | undefined;

  /** `name`: the queue's name, which controller-runtime sets to the controller's. `now`: a monotonic clock in ms. */
  constructor(registry: Registry, name: string, now: () => number = () => performance.now()) {
    this.labels = { name, controller: name };
    this.now = now;
    const registers = [registry];
    const labelNames = ['name', 'controller'] as const;
    this.depth = new Gauge({ name: 'workqueue_depth', help: 'Current depth of workqueue', labelNames, registers });
    this.adds = new Counter({ name: 'workqueue_adds_total', help: 'Total number of adds handled by workqueue', labelNames, registers });
    this.queueDuration = new Histogram({
      name: 'workqueue_queue_duration_seconds',
      help: 'How long in seconds an item stays in workqueue before being requested',
      labelNames,
      buckets: BUCKETS,
      registers,
    });
    this.workDuration = new Histogram({
      name: 'workqueue_work_duration_seconds',
      help: 'How long in seconds processing an item from workqueue takes.',
      labelNames,
      buckets: BUCKETS,
      registers,
    });
    const running = (): number => (this.startedAt === undefined ? 0 : (this.now() - this.startedAt) / 1000);
    const labels = this.labels;
    // One worker: the work in progress and the longest-running processor are the same reconcile. Read at scrape time.
    new Gauge({
      name: 'workqueue_unfinished_work_seconds',
      help: "How many seconds of work has been done that is in progress and hasn't been observed by work_duration. Large values indicate stuck threads.",
      labelNames,
      registers,
      collect() {
        this.set(labels, running());
      },
    });
    new Gauge({
      name: 'workqueue_longest_running_processor_seconds',
      help: 'How many seconds has the longest running processor for workqueue been running.',
      labelNames,
      registers,
      collect() {
        this.set(labels, running());
      },
    });
    this.retries = new Counter({ name: 'workqueue_retries_total', help: 'Total number of retries handled by workqueue', labelNames, registers });
    // Every series from the start, so that rate() and alerts work before the first event.
    this.depth.set(this.labels, 0);
    this.adds.inc(this.labels, 0);
    this.retries.inc(this.labels, 0);
    this.queueDuration.zero(this.labels);
    this.workDuration.zero(this.labels);
  }

  /** A trigger: the item enters the queue unless it is already waiting there. */
  add(): void {
    if (this.queuedAt !== undefined) return;
    this.queuedAt = this.now();
    this.adds.inc(this.labels);
    this.depth.set(this.labels, 1);
  }

  /** A reconcile starts and takes the item (a no-op when nothing was queued). */
  start(): void {
    if (this.queuedAt === undefined) return;
    const now = this.now();
    this.queueDuration.observe(this.labels, (now - this.queuedAt) / 1000);
    this.queuedAt = undefined;
    this.depth.set(this.labels, 0);
    this.startedAt = now;
  }

  /** The reconcile that start() began has ended. */
  done(): void {
    if (this.startedAt === undefined) return;
    this.workDuration.observe(this.labels, (this.now() - this.startedAt) / 1000);
    this.startedAt = undefined;
  }

  /** A retry with backoff was scheduled (client-go counts AddRateLimited). */
  retry(): void {
    this.retries.inc(this.labels);
  }
}
