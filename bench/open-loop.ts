// Open-loop load: calls go out on a fixed schedule whatever the system under test answers, so a slow
// server cannot slow the sender down and hide its own latency. Also the small statistics the bench prints.
import { performance } from 'node:perf_hooks';

/** Wall-clock epoch ms with sub-ms precision, comparable with the Temporal server's timestamps on this machine. */
export function clockMs(): number {
  return performance.timeOrigin + performance.now();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface OpenLoopResult {
  /** clockMs() at which call i went out */
  sentAt: number[];
  /** How late call i went out against its schedule (ms): a busy event loop shows here. */
  lagMs: number[];
  /** Calls whose promise rejected, with the first few reasons. */
  failures: number;
  failureSamples: string[];
  /** Calls per second actually achieved, first call to last. */
  achievedRate: number;
}

/** Makes `count` calls at `rate` per second on a fixed schedule; resolves when every call has settled. */
export async function runOpenLoop(rate: number, count: number, call: (i: number) => Promise<void>): Promise<OpenLoopResult> {
  const interval = 1000 / rate;
  const sentAt = new Array<number>(count).fill(0);
  const lagMs = new Array<number>(count).fill(0);
  const inflight: Array<Promise<void>> = [];
  const failureSamples: string[] = [];
  let failures = 0;
  const start = performance.now() + 5;
  let next = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (next < count && start + next * interval <= now) {
        const i = next++;
        lagMs[i] = performance.now() - (start + i * interval);
        sentAt[i] = clockMs();
        inflight.push(
          call(i).catch((err: unknown) => {
            failures += 1;
            if (failureSamples.length < 5) failureSamples.push(err instanceof Error ? err.message : String(err));
          }),
        );
      }
      if (next >= count) return resolve();
      setTimeout(tick, Math.max(0, start + next * interval - performance.now()));
    };
    tick();
  });
  await Promise.all(inflight);
  const span = count > 1 ? (sentAt[count - 1]! - sentAt[0]!) / 1000 : 0;
  return { sentAt, lagMs, failures, failureSamples, achievedRate: span > 0 ? (count - 1) / span : rate };
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  });
  await Promise.all(lanes);
}

export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentiles; a missing sample (the run never started) counts as infinitely late. */
export function summarize(latencies: Array<number | undefined>): LatencySummary {
  const sorted = latencies.map((l) => l ?? Number.POSITIVE_INFINITY).sort((a, b) => a - b);
  const at = (p: number) => (sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!);
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1) };
}
