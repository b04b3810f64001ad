// Group commit for ingest: requests that arrive while a write is in flight are written together in the next
// transaction, so throughput rises with load instead of queueing one transaction per event. It also bounds the
// events waiting to be written: beyond the limit a request gets 429 + Retry-After, never a silent drop.
import { OverloadedError } from '../core/errors';
import type { NewEvent, RecordEventResult, Store } from '../store/store';

export interface IngestQueueOptions {
  /** Events waiting or being written beyond which new requests are refused with 429. */
  maxPendingEvents: number;
  /** Most events written in one transaction (whole requests are never split). */
  maxBatchEvents: number;
  /**
   * Under sustained load (a transaction ended less than `busyWindowMs` ago), how long the first waiting request
   * holds the next transaction open for others to join. Idle, a request is written at the next turn of the loop.
   */
  lingerMs?: number;
  /** A transaction that ended this recently means requests are arriving back to back (20 ms). */
  busyWindowMs?: number;
}

interface Submission {
  events: NewEvent[];
  resolve(results: RecordEventResult[]): void;
  reject(err: unknown): void;
}

export class IngestQueue {
  private queue: Submission[] = [];
  private pendingEvents = 0;
  private draining = false;
  private lastWriteEndedAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly store: Store,
    private readonly needsDispatch: (event: NewEvent) => boolean,
    private readonly options: IngestQueueOptions,
  ) {}

  /** Resolves once the events are committed (results in input order); throws OverloadedError when full. */
  submit(events: NewEvent[]): Promise<RecordEventResult[]> {
    if (events.length === 0) return Promise.resolve([]);
    // An empty queue always takes a request, so a batch larger than the limit is still accepted when idle.
    if (this.pendingEvents > 0 && this.pendingEvents + events.length > this.options.maxPendingEvents) {
      throw new OverloadedError(
        `${this.pendingEvents} events are waiting to be written (limit ${this.options.maxPendingEvents}); retry after the Retry-After seconds`,
        1,
      );
    }
    this.pendingEvents += events.length;
    return new Promise((resolve, reject) => {
      this.queue.push({ events, resolve, reject });
      if (!this.draining) {
        this.draining = true;
        // One turn of the event loop lets requests that arrived together join the first transaction. Under load,
        // a short linger lets more join: one transaction of ten events costs far less than ten of one.
        const linger = this.options.lingerMs ?? 0;
        if (linger > 0 && performance.now() - this.lastWriteEndedAt < (this.options.busyWindowMs ?? 20)) setTimeout(() => void this.drain(), linger);
        else setImmediate(() => void this.drain());
      }
    });
  }

  get pending(): number {
    return this.pendingEvents;
  }

  private take(): Submission[] {
    const taken: Submission[] = [];
    let size = 0;
    while (this.queue.length > 0) {
      const next = this.queue[0]!;
      if (taken.length > 0 && size + next.events.length > this.options.maxBatchEvents) break;
      taken.push(this.queue.shift()!);
      size += next.events.length;
    }
    return taken;
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const taken = this.take();
        try {
          await this.write(taken);
        } finally {
          this.pendingEvents -= taken.reduce((n, s) => n + s.events.length, 0);
          this.lastWriteEndedAt = performance.now();
        }
      }
    } finally {
      this.draining = false;
    }
  }

  private async write(taken: Submission[]): Promise<void> {
    try {
      const results = await this.store.recordEvents(
        taken.flatMap((s) => s.events),
        { needsDispatch: this.needsDispatch },
      );
      let offset = 0;
      for (const submission of taken) {
        submission.resolve(results.slice(offset, offset + submission.events.length));
        offset += submission.events.length;
      }
    } catch (err) {
      if (taken.length === 1) return taken[0]!.reject(err);
      // One request's failure must not fail the others that shared its transaction: write each on its own.
      for (const submission of taken) await this.write([submission]);
    }
  }
}
