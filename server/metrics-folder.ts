// Keeps the report counters current in a runtime process: folds the events recorded since the last pass into them
// (store foldMetrics) every MICROFLOWS_METRICS_EVERY, with the flows as they are now. A failed pass is logged and the
// next one tries again; several processes folding at once is safe (the store serializes them). After each pass the
// experiments with a winner rule are checked against the new counts (afterFold).
import type { FlowDefinition } from '../core/flow-types';
import type { MetricsFold } from '../store/metrics-store';
import type { Store } from '../store/store';

export interface MetricsFolderOptions {
  store: Pick<Store, 'foldMetrics'>;
  /** The flows whose goal events count as conversions, read at every pass (a reload changes them). */
  flows: () => readonly FlowDefinition[];
  /** Pause between the end of one pass and the start of the next, ms. */
  everyMs: number;
  log: (message: string) => void;
  /** Runs after each pass that folded without error (the experiments' winner check: server/experiment-decider). */
  afterFold?: () => Promise<void>;
}

export class MetricsFolder {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = true;
  /** The last failure logged: the same one again is not repeated until a pass succeeds. */
  private lastError: string | null = null;

  constructor(private readonly options: MetricsFolderOptions) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule();
  }

  /** Stops the passes; resolves when a pass in flight has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  /** One pass now, unless one is in flight (then that one's end); never throws. Null when it failed. */
  async foldNow(): Promise<MetricsFold | null> {
    if (this.running) {
      await this.running;
      return null;
    }
    let result: MetricsFold | null = null;
    this.running = (async () => {
      try {
        result = await this.options.store.foldMetrics({ flows: this.options.flows() });
        await this.options.afterFold?.();
        if (this.lastError !== null) this.options.log('[metrics] folding events into the report counters works again');
        this.lastError = null;
      } catch (err) {
        const message = (err as Error)?.message ?? String(err);
        if (message !== this.lastError) this.options.log(`[metrics] folding events into the report counters failed (retrying every ${this.options.everyMs} ms): ${message}`);
        this.lastError = message;
      }
    })();
    try {
      await this.running;
    } finally {
      this.running = null;
    }
    return result;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.foldNow().then(() => this.schedule());
    }, this.options.everyMs);
    // The pass never keeps a process alive on its own: stop() is what ends it.
    this.timer.unref();
  }
}
