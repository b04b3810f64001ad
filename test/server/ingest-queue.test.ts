// Group commit on a real SQLite store: requests that arrive together share a transaction, and under sustained
// load a short linger lets a request that comes one loop turn later join too; an idle queue does not linger.
import { IngestQueue } from '../../server/ingest-queue';
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

describe('IngestQueue', () => {
  let store: KyselyStore;
  let transactions: number[];

  beforeEach(async () => {
    store = openSqliteStore(':memory:');
    await store.migrate();
    transactions = [];
    const recordEvents = store.recordEvents.bind(store);
    store.recordEvents = (events, options) => {
      transactions.push(events.length);
      return recordEvents(events, options);
    };
  });

  afterEach(async () => {
    await store.close();
  });

  // A wide busy window: a slow machine pausing between two submissions must not make the queue count as idle.
  const queueWith = (lingerMs: number) => new IngestQueue(store, () => false, { maxPendingEvents: 1000, maxBatchEvents: 100, lingerMs, busyWindowMs: 60_000 });

  it('writes requests submitted in the same turn in one transaction, in order', async () => {
    const queue = queueWith(2);
    const results = await Promise.all([queue.submit([viewed('a'), viewed('b')]), queue.submit([viewed('c')])]);
    expect(transactions).toEqual([3]);
    expect(results.map((r) => r.map((x) => x.event.customerId))).toEqual([['a', 'b'], ['c']]);
  });

  it('under load, a request one turn later joins the lingering transaction', async () => {
    const queue = queueWith(2);
    await queue.submit([viewed('warm')]);
    await nextTurn(); // the drain is over and a transaction has just ended: the queue counts as busy
    const first = queue.submit([viewed('d')]);
    await nextTurn();
    const second = queue.submit([viewed('e')]);
    await Promise.all([first, second]);
    expect(transactions).toEqual([1, 2]);
    expect(await store.eventsOf('e')).toHaveLength(1);
  });

  it('without a linger, the same request one turn later gets a transaction of its own', async () => {
    const queue = queueWith(0);
    await queue.submit([viewed('warm')]);
    await nextTurn();
    const first = queue.submit([viewed('f')]);
    await nextTurn();
    const second = queue.submit([viewed('g')]);
    await Promise.all([first, second]);
    expect(transactions).toEqual([1, 1, 1]);
  });

  it('an idle queue writes at the next turn without lingering', async () => {
    const queue = queueWith(10_000);
    // Nothing was written before: a 10 s linger would time this test out if an idle queue lingered.
    await queue.submit([viewed('h')]);
    expect(transactions).toEqual([1]);
  });
});
