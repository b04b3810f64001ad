// A child-process script that plays a customer's story through the real @segment/analytics-node client against a
// microflows server, then prints (as one JSON line) the calls it made, each with its messageId and the real time
// it was made. Run it with test/support/skewed-clock.ts required first to give the client a wrong clock.
import { Analytics } from '@segment/analytics-node';

/** What the parent passes as the one argument (JSON). */
export interface SegmentClientOptions {
  url: string;
  writeKey: string;
  userId: string;
  anonymousId: string;
  /** An id the customer had in an older system; the story aliases it to `userId`. */
  legacyId: string;
  /** How long the last calls wait in the client's queue before closeAndFlush sends them. */
  holdMs: number;
}

export interface SentCall {
  messageId: string;
  type: 'track' | 'identify' | 'page' | 'screen' | 'group' | 'alias';
  /** The event name for track, the page or screen name, null for the rest (as the server stores it). */
  name: string | null;
  /** When the call was made by the real clock, epoch ms. */
  realTime: number;
}

export interface SegmentClientReport {
  calls: SentCall[];
  /** HTTP status of every request the client made, in order. */
  statuses: number[];
  /** Delivery failures the client reported. */
  failures: string[];
}

/** Events per request: the story has 12 calls, so the client sends three batches. */
const FLUSH_AT = 5;

async function run(): Promise<void> {
  const options = JSON.parse(process.argv[2] ?? '') as SegmentClientOptions;
  const skewMs = Number(process.env.SKEW_MS ?? '0');
  // Date is the skewed one here; the report carries real times so the parent can compare with its own clock.
  const realNow = () => Date.now() - skewMs;

  const analytics = new Analytics({
    writeKey: options.writeKey,
    host: options.url,
    flushAt: FLUSH_AT,
    // Long enough that only a full batch or closeAndFlush sends anything: the held calls wait for the flush.
    flushInterval: 60_000,
    maxRetries: 0,
  });
  const report: SegmentClientReport = { calls: [], statuses: [], failures: [] };
  analytics.on('http_response', (response) => report.statuses.push(response.status));
  analytics.on('error', (err) => report.failures.push(`${err.code}: ${String((err as { reason?: unknown }).reason ?? '')}`));

  const { userId, anonymousId, legacyId } = options;
  let sequence = 0;
  const nextId = () => `${userId}-msg-${++sequence}`;
  const note = (type: SentCall['type'], name: string | null, messageId: string) => report.calls.push({ messageId, type, name, realTime: realNow() });

  const track = (name: string, who: { userId: string } | { anonymousId: string }, properties: Record<string, unknown> = {}, messageId = nextId()) => {
    analytics.track({ ...who, event: name, properties, messageId });
    note('track', name, messageId);
  };

  track('Signed Up', { userId: legacyId });
  track('Product Viewed', { anonymousId }, { product_id: 'sku-1', category: 'Shoes', price: 80 });
  const identifyId = nextId();
  analytics.identify({ userId, anonymousId, traits: { email: `${userId}@example.com`, plan: 'pro' }, messageId: identifyId });
  note('identify', null, identifyId);
  const pageId = nextId();
  analytics.page({ userId, name: 'Pricing', category: 'Docs', properties: { path: '/pricing' }, messageId: pageId });
  note('page', 'Pricing', pageId);
  const screenId = nextId();
  analytics.screen({ userId, name: 'Home', messageId: screenId });
  note('screen', 'Home', screenId);

  const groupId = nextId();
  analytics.group({ userId, groupId: 'acme', traits: { name: 'Acme Inc.' }, messageId: groupId });
  note('group', null, groupId);
  const aliasId = nextId();
  analytics.alias({ userId, previousId: legacyId, messageId: aliasId });
  note('alias', null, aliasId);
  track('Product Added', { userId }, { product_id: 'sku-1', price: 80, quantity: 1 });
  // The same call twice, as a client retrying after a lost response would: one messageId, so one event.
  const repeatedId = nextId();
  track('Cart Viewed', { userId }, {}, repeatedId);
  track('Cart Viewed', { userId }, {}, repeatedId);

  track('Checkout Started', { userId }, { value: 80 });
  track('Order Completed', { userId }, { order_id: `${userId}-order`, total: 80 });
  // These two sit in the client's queue: their timestamp is older than the batch's sentAt by holdMs.
  await new Promise((resolve) => setTimeout(resolve, options.holdMs));
  await analytics.closeAndFlush({ timeout: 30_000 });

  process.stdout.write(`${JSON.stringify(report)}\n`);
}

run().catch((err) => {
  console.error(err);
  process.exit(1);
});
