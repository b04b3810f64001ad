// Group commit for ingest: requests that arrive while a write is in flight are written together in the next
// transaction, so throughput rises with load instead of queueing one transaction per event. It also bounds the
// events waiting to be written: beyond the limit a request gets 429 + Retry-After, never a silent drop.
import { OverloadedError, PayloadTooLargeError } from '../core/errors';
import { BATCH_LIMIT_BYTES } from '../core/segment-spec';
import type { NewEvent, RecordEventResult, Store } from '../store/store';

/**
 * The most events a /v1/batch body can carry: 500 KB of the smallest call a batch accepts, `{"type":"page","userId":1}`
 * (26 bytes), each followed by a comma. An idle queue takes this many whatever the pending cap, so a full batch is
 * always accepted on an idle server.
 */
export const MOST_EVENTS_PER_BATCH = Math.floor(BATCH_LIMIT_BYTES / 27);

export interface IngestQueueOptions {
  /**
   * Events waiting or being written beyond which new requests are refused with 429. A request larger than this
   * (or than MOST_EVENTS_PER_BATCH, if that is more) is refused even by an empty queue.
   */
  maxPendingEvents: number;
  /** Most events written in one transaction, for requests written together (a request is never split). */
  maxBatchEvents: number;
  /**
   * Under sustained load (a transaction ended less than `busyWindowMs` ago), how long the first waiting request
   * holds the next transaction open for others to join. Idle, a request is written at the next turn of the loop.
   */
  lingerMs?: number;
  /** A transaction that ended this recently means requests are arriving back to back (20 ms). */
  busyWindowMs?: number;
  /** What every event goes through before it is written, whichever route took it (the IP truncation). */
  prepare?: (event: NewEvent) => NewEvent;
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

  /**
   * Resolves once the events are committed (results in input order); throws OverloadedError when full, and
   * PayloadTooLargeError for a request larger than the queue ever takes.
   */
  submit(events: NewEvent[]): Promise<RecordEventResult[]> {
    if (events.length === 0) return Promise.resolve([]);
    // Refused whole rather than written in parts: a request stays one transaction (all of it stored or none), and
    // the sender, told the most a request may carry, keeps its events and sends them in smaller requests.
    if (events.length > this.mostPerRequest) {
      throw new PayloadTooLargeError(
        `this request carries ${events.length} events; the most one request may carry is ${this.mostPerRequest}: send them in several smaller requests`,
      );
    }
    // An empty queue takes any request up to that size, so a full batch is accepted when idle even over the cap.
    if (this.pendingEvents > 0 && this.pendingEvents + events.length > this.options.maxPendingEvents) {
      throw new OverloadedError(
        `${this.pendingEvents} events are waiting to be written (limit ${this.options.maxPendingEvents}); retry after the Retry-After seconds`,
        1,
      );
    }
    this.pendingEvents += events.length;
    const prepare = this.options.prepare;
    const prepared = prepare ? events.map((event) => prepare(event)) : events;
    return new Promise((resolve, reject) => {
      this.queue.push({ events: prepared, resolve, reject });
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

  /** The largest request accepted at all: the pending cap, or a full batch when the cap is set below one. */
  get mostPerRequest(): number {
    return Math.max(this.options.maxPendingEvents, MOST_EVENTS_PER_BATCH);
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
