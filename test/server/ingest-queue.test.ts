// Group commit on a real SQLite store: requests that arrive together share a transaction, and under sustained
// load a short linger lets later requests join; an idle queue does not linger. The clock the queue reads
// (setTimeout and performance.now) is jest's fake one, so "does not linger" is a count of pending timers and a
// linger is stepped through by the test, never waited for; setImmediate and the microtask queue stay real, as
// the store needs them.
import { PayloadTooLargeError } from '../../core/errors';
import { BATCH_LIMIT_BYTES, parseBatchCall } from '../../core/segment-spec';
import { IngestQueue, MOST_EVENTS_PER_BATCH } from '../../server/ingest-queue';
import type { KyselyStore } from '../../store/kysely-store';
import { openSqliteStore } from '../../store/sqlite';
import type { NewEvent } from '../../store/store';

let sequence = 0;

function viewed(customerId: string): NewEvent {
  sequence += 1;
  return {
    messageId: `queue-${sequence}`,
    type: 'track',
    customerId,
    userId: customerId,
    anonymousId: null,
    name: 'Product Viewed',
    properties: { product_id: `p${sequence}` },
    traits: {},
    context: {},
    timestamp: 1_700_000_000_000 + sequence,
    receivedAt: 1_700_000_000_000 + sequence,
  };
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Several real turns of the event loop: long enough for a write that was not held back to finish. */
async function turns(count = 20): Promise<void> {
  for (let i = 0; i < count; i++) await nextTurn();
}

const LINGER_MS = 2;
const BUSY_WINDOW_MS = 60_000;

describe('IngestQueue', () => {
  let store: KyselyStore;
  let transactions: number[];
  let queues: IngestQueue[] = [];

  beforeEach(async () => {
    store = openSqliteStore(':memory:');
    await store.migrate();
    transactions = [];
    const recordEvents = store.recordEvents.bind(store);
    store.recordEvents = (events, options) => {
      transactions.push(events.length);
      return recordEvents(events, options);
    };
    jest.useFakeTimers({
      doNotFake: ['Date', 'hrtime', 'nextTick', 'queueMicrotask', 'setImmediate', 'clearImmediate', 'setInterval', 'clearInterval', 'requestAnimationFrame', 'cancelAnimationFrame', 'requestIdleCallback', 'cancelIdleCallback'],
    });
  });

  afterEach(async () => {
    // A failed test can leave a write pending: let it finish here, not on a closed store in the next test.
    jest.runOnlyPendingTimers();
    for (let i = 0; i < 100 && queues.some((q) => q.pending > 0); i++) await nextTurn();
    queues = [];
    jest.useRealTimers();
    await store.close();
  });

  const queueWith = (lingerMs: number, maxPendingEvents = 1000) => {
    const queue = new IngestQueue(store, () => false, { maxPendingEvents, maxBatchEvents: 100, lingerMs, busyWindowMs: BUSY_WINDOW_MS });
    queues.push(queue);
    return queue;
  };

  /** Ends one write now, so that by the fake clock the queue is busy until BUSY_WINDOW_MS have passed. */
  async function warm(queue: IngestQueue): Promise<void> {
    const written = queue.submit([viewed('warm')]);
    expect(jest.getTimerCount()).toBe(0); // a fresh queue is idle (and a timer here would hold this write forever)
    await written;
    await nextTurn(); // the drain is over
    transactions = [];
  }

  it('writes requests submitted in the same turn in one transaction, in order', async () => {
    const queue = queueWith(LINGER_MS);
    const written = Promise.all([queue.submit([viewed('a'), viewed('b')]), queue.submit([viewed('c')])]);
    expect(jest.getTimerCount()).toBe(0);
    const results = await written;
    expect(transactions).toEqual([3]);
    expect(results.map((r) => r.map((x) => x.event.customerId))).toEqual([['a', 'b'], ['c']]);
  });

  it('an idle queue sets no linger timer and writes at the next turn, even with a long linger', async () => {
    const queue = queueWith(10_000);
    const written = queue.submit([viewed('h')]);
    expect(jest.getTimerCount()).toBe(0);
    // The fake clock never moves in this test: a write held back by any timer would never resolve.
    const [result] = await written;
    expect(transactions).toEqual([1]);
    expect(result!.duplicate).toBe(false);
    expect(await store.eventsOf('h')).toHaveLength(1);
  });

  it('under load, the first request waits one linger timer, and a request arriving meanwhile joins its transaction', async () => {
    const queue = queueWith(LINGER_MS);
    await warm(queue);
    const first = queue.submit([viewed('d')]);
    expect(jest.getTimerCount()).toBe(1);
    await turns();
    const second = queue.submit([viewed('e')]);
    expect(jest.getTimerCount()).toBe(1); // the second request joins the pending linger, it sets no timer of its own
    await turns();
    expect(transactions).toEqual([]);
    jest.advanceTimersByTime(LINGER_MS - 1);
    await turns();
    expect(transactions).toEqual([]);
    jest.advanceTimersByTime(1);
    await Promise.all([first, second]);
    expect(transactions).toEqual([2]);
    expect(jest.getTimerCount()).toBe(0);
    expect(await store.eventsOf('e')).toHaveLength(1);
  });

  it('counts as busy for the busy window after a write ends, and as idle from its end on', async () => {
    const queue = queueWith(LINGER_MS);
    await warm(queue);
    jest.advanceTimersByTime(BUSY_WINDOW_MS - 1);
    const late = queue.submit([viewed('i')]);
    expect(jest.getTimerCount()).toBe(1);
    jest.advanceTimersByTime(LINGER_MS);
    await late;
    await nextTurn();
    // That write ended just now: wait out a whole window again, to the millisecond.
    jest.advanceTimersByTime(BUSY_WINDOW_MS);
    const idle = queue.submit([viewed('j')]);
    expect(jest.getTimerCount()).toBe(0);
    await idle;
    expect(transactions).toEqual([1, 1]);
  });

  it('without a linger, the same request one turn later gets a transaction of its own', async () => {
    const queue = queueWith(0);
    await warm(queue);
    const first = queue.submit([viewed('f')]);
    expect(jest.getTimerCount()).toBe(0);
    await nextTurn();
    const second = queue.submit([viewed('g')]);
    await Promise.all([first, second]);
    expect(transactions).toEqual([1, 1]);
  });

  describe('the pending cap holds when the queue is empty', () => {
    const many = (count: number, customerId: string) => Array.from({ length: count }, () => viewed(customerId));

    it('refuses, even when idle, a request one event over the most a request may carry, naming both counts, and stores none of it', async () => {
      const cap = MOST_EVENTS_PER_BATCH + 500;
      const queue = queueWith(0, cap);
      expect(queue.mostPerRequest).toBe(cap);
      const before = await store.tableCounts();
      expect(() => queue.submit(many(cap + 1, 'too-many'))).toThrow(PayloadTooLargeError);
      expect(() => queue.submit(many(cap + 1, 'too-many'))).toThrow(`this request carries ${cap + 1} events; the most one request may carry is ${cap}: send them in several smaller requests`);
      await turns();
      expect(queue.pending).toBe(0);
      expect(transactions).toEqual([]);
      expect(await store.tableCounts()).toEqual(before);
      // One event fewer is the most an idle queue takes: accepted whole, in one transaction.
      const results = await queue.submit(many(cap, 'just-fits'));
      expect(results).toHaveLength(cap);
      expect(transactions).toEqual([cap]);
      expect((await store.tableCounts()).events).toBe(before.events! + cap);
    });

    it('accepts on an idle server a full 500 KB batch of the smallest calls, even with a pending cap of 1', async () => {
      // The smallest call a batch accepts: without a type or an id the parser refuses it, and 1 is the shortest id.
      const smallest = '{"type":"page","userId":1}';
      for (const shorter of ['{"type":"page"}', '{"userId":1}']) expect(parseBatchCall(JSON.parse(`{"batch":[${shorter}]}`), 0, () => 'm').events).toEqual([]);
      const count = Math.floor((BATCH_LIMIT_BYTES - '{"batch":[]}'.length + 1) / (smallest.length + 1));
      const body = `{"batch":[${Array.from({ length: count }, () => smallest).join(',')}]}`;
      expect(Buffer.byteLength(body)).toBeLessThanOrEqual(BATCH_LIMIT_BYTES);
      expect(Buffer.byteLength(body) + smallest.length + 1).toBeGreaterThan(BATCH_LIMIT_BYTES); // not one call more fits
      let id = 0;
      const { events, rejected } = parseBatchCall(JSON.parse(body), 1_700_000_000_000, () => `full-batch-${++id}`);
      expect(rejected).toEqual([]);
      expect(events).toHaveLength(count);
      expect(count).toBeLessThanOrEqual(MOST_EVENTS_PER_BATCH);

      const queue = queueWith(0, 1);
      expect(await queue.submit(events)).toHaveLength(count);
      expect(transactions).toEqual([count]);
      expect((await store.tableCounts()).events).toBe(count);
    });

    it('while a write is pending, refuses with 429 a request that would pass the cap, and writes exactly the accepted one', async () => {
      const queue = queueWith(0, 10);
      const first = queue.submit(many(6, 'first'));
      expect(() => queue.submit(many(5, 'second'))).toThrow(expect.objectContaining({ status: 429, message: expect.stringMatching(/^6 events are waiting to be written \(limit 10\)/) }));
      const third = queue.submit(many(4, 'third')); // exactly at the cap: taken
      await Promise.all([first, third]);
      expect(transactions).toEqual([10]);
      expect(await store.eventsOf('second')).toEqual([]);
      expect(await store.eventsOf('third')).toHaveLength(4);
    });
  });
});
