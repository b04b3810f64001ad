// The real-time segment queue's own cost, beside the algorithm it replaced measured in the same run: taking one batch
// of 100 customers for evaluation (and queueing a customer) with 10k, 100k and 1M customers waiting. The old queue
// copied its whole pending Set into an array for every batch; the new one (core/unique-queue.ts) slices the front.
// No store is involved: the evaluations themselves are bench/segments.ts's subject.
//
//   npx tsx bench/segment-queue.ts [--sizes 10000,100000,1000000] [--batches N]
import { performance } from 'node:perf_hooks';
import { UniqueQueue } from '../core/unique-queue';
import { printTable } from './table';

/** What the segment engine takes per evaluation transaction. */
const BATCH = 100;

interface PendingQueue {
  add(id: string): void;
  take(count: number): string[];
  readonly size: number;
}

/** The replaced algorithm, as activities/segment-engine.ts had it: a Set, copied whole to take a batch. */
class CopyingQueue implements PendingQueue {
  private readonly pending = new Set<string>();
  add(id: string): void {
    this.pending.add(id);
  }
  take(count: number): string[] {
    const batch = [...this.pending].slice(0, count);
    for (const id of batch) this.pending.delete(id);
    return batch;
  }
  get size(): number {
    return this.pending.size;
  }
}

/** The engine's queue, unbounded here so that both hold the same customers. */
class LinearQueue implements PendingQueue {
  private readonly queue = new UniqueQueue<string>(Number.MAX_SAFE_INTEGER);
  add(id: string): void {
    this.queue.add(id);
  }
  take(count: number): string[] {
    return this.queue.take(count);
  }
  get size(): number {
    return this.queue.size;
  }
}

function flag(name: string): string | undefined {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? process.argv[at + 1] : undefined;
}

interface Figures {
  enqueueNsPerCustomer: number;
  msPerBatch: number;
  /** The event loop blocked by taking every batch until the queue is empty (measured, or estimated). */
  drainAllMs: number;
  drainMeasured: boolean;
}

/**
 * Fills a queue with `size` customers, then takes `batches` batches one by one (each is what one turn of the
 * engine's drain does), keeping the queue at `size` by adding a new customer per one taken, as sustained ingest does.
 */
function measure(make: () => PendingQueue, size: number, batches: number, drainAll: boolean): Figures {
  const queue = make();
  let next = 0;
  const fillStarted = performance.now();
  while (queue.size < size) queue.add(`customer-${next++}`);
  const enqueueNsPerCustomer = ((performance.now() - fillStarted) * 1e6) / size;
  const times: number[] = [];
  for (let i = 0; i < batches; i++) {
    const started = performance.now();
    const batch = queue.take(BATCH);
    times.push(performance.now() - started);
    if (batch.length !== BATCH) throw new Error(`took ${batch.length} customers, expected ${BATCH}`);
    for (let j = 0; j < BATCH; j++) queue.add(`customer-${next++}`);
  }
  // The median: a garbage collection that lands in one batch is not the batch's cost.
  const msPerBatch = times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
  // A batch costs time proportional to the customers waiting, which fall from `size` to 0: half a full batch's on average.
  if (!drainAll) return { enqueueNsPerCustomer, msPerBatch, drainAllMs: (msPerBatch * Math.ceil(size / BATCH)) / 2, drainMeasured: false };
  const drainStarted = performance.now();
  while (queue.size > 0) queue.take(BATCH);
  return { enqueueNsPerCustomer, msPerBatch, drainAllMs: performance.now() - drainStarted, drainMeasured: true };
}

function main(): void {
  const sizes = (flag('sizes') ?? '10000,100000,1000000').split(',').map(Number);
  const batches = Number(flag('batches') ?? 101);
  // Warm-up: both code paths compiled before anything is timed.
  measure(() => new CopyingQueue(), 10_000, 20, true);
  measure(() => new LinearQueue(), 10_000, 20, true);

  const rows: string[][] = [];
  for (const size of sizes) {
    const linear = measure(() => new LinearQueue(), size, batches, true);
    // Draining 1M the old way takes about a minute: its total is estimated from its measured batch time.
    const copying = measure(() => new CopyingQueue(), size, batches, size <= 100_000);
    const drain = (f: Figures) => `${f.drainAllMs < 10 ? f.drainAllMs.toFixed(2) : f.drainAllMs.toFixed(0)}${f.drainMeasured ? '' : ' (est.)'}`;
    rows.push([
      size.toLocaleString('en-US'),
      linear.msPerBatch.toFixed(4),
      copying.msPerBatch.toFixed(2),
      (copying.msPerBatch / linear.msPerBatch).toFixed(0),
      linear.enqueueNsPerCustomer.toFixed(0),
      copying.enqueueNsPerCustomer.toFixed(0),
      drain(linear),
      drain(copying),
    ]);
  }
  console.log(`segment queue: taking a batch of ${BATCH} with N customers waiting (median of ${batches} batches; node ${process.version})\n`);
  printTable(
    ['waiting', 'ms/batch, queue', 'ms/batch, copying Set (old)', 'old ÷ new', 'ns/enqueue, queue', 'ns/enqueue, Set (old)', 'drain all ms, queue', 'drain all ms, old'],
    rows,
    [],
  );
}

main();
