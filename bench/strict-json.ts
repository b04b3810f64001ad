// parseStrictJson against JSON.parse on the same ~500-byte Segment events, in MB/s and events/s on one core.
//
//   npx tsx bench/strict-json.ts
//
// Env (optional): BENCH_EVENTS distinct events (10000), BENCH_ROUNDS timed passes over them (15).
import { parseStrictJson } from '../core/strict-json';
import { seededRandom } from '../test/support/seeded-random';

const EVENTS = Number(process.env.BENCH_EVENTS ?? 10_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);
/** The ingest target: 20,000 events/s of ~500 bytes on one core. */
const TARGET_EVENTS_PER_SECOND = 20_000;


/** A track call shaped like what analytics.js sends: ids, a few properties, a context block. */
function sampleEvents(count: number): Buffer[] {
  const random = seededRandom(20_000);
  const words = ['Product Added', 'Product Viewed', 'Checkout Started', 'Order Completed', 'Café crème', 'naïve “quotes”', 'line\nbreak', 'emoji 😀'];
  const word = () => words[Math.floor(random() * words.length)]!;
  const events: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const call = {
      type: 'track',
      messageId: `ajs-${i.toString(36)}-${Math.floor(random() * 1e9).toString(36)}`,
      userId: `user-${Math.floor(random() * 100_000)}`,
      anonymousId: `anon-${Math.floor(random() * 1e12).toString(36)}`,
      event: word(),
      properties: {
        product_id: `p-${Math.floor(random() * 5000)}`,
        name: word(),
        price: Math.round(random() * 100_000) / 100,
        quantity: 1 + Math.floor(random() * 5),
        in_stock: random() < 0.8,
        tags: [word(), word()],
      },
      context: {
        ip: `10.${Math.floor(random() * 256)}.${Math.floor(random() * 256)}.${Math.floor(random() * 256)}`,
        locale: 'fr-FR',
        page: { path: '/products/42', url: 'https://shop.example.com/products/42?utm_source=mail', title: word() },
        userAgent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36',
      },
      timestamp: new Date(Date.UTC(2024, 4, 1) + Math.floor(random() * 1e9)).toISOString(),
    };
    events.push(Buffer.from(JSON.stringify(call)));
  }
  return events;
}

interface Figure {
  name: string;
  mbPerSecond: number;
  eventsPerSecond: number;
}

/** The best of ROUNDS passes, after a warm-up pass: the steady state once the JIT has settled. */
function measure(name: string, events: Buffer[], parse: (bytes: Buffer) => unknown): Figure {
  const bytes = events.reduce((sum, e) => sum + e.length, 0);
  let sink = 0;
  for (const e of events) sink += parse(e) === undefined ? 0 : 1;
  let best = Infinity;
  for (let round = 0; round < ROUNDS; round++) {
    const start = process.hrtime.bigint();
    for (const e of events) sink += parse(e) === undefined ? 0 : 1;
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e9);
  }
  if (sink === 0) throw new Error('nothing parsed');
  return { name, mbPerSecond: bytes / 1e6 / best, eventsPerSecond: events.length / best };
}

async function run(): Promise<void> {
  const events = sampleEvents(EVENTS);
  const average = Math.round(events.reduce((sum, e) => sum + e.length, 0) / events.length);
  for (const e of events) {
    if (JSON.stringify(parseStrictJson(e)) !== JSON.stringify(JSON.parse(e.toString('utf8')))) throw new Error('parseStrictJson and JSON.parse disagree');
  }
  const fatal = new TextDecoder('utf-8', { fatal: true });
  const figures = [
    measure('JSON.parse(buffer.toString())', events, (e) => JSON.parse(e.toString('utf8'))),
    measure('JSON.parse(fatal TextDecoder)', events, (e) => JSON.parse(fatal.decode(e))),
    measure('parseStrictJson(buffer)', events, (e) => parseStrictJson(e)),
  ];
  const baseline = figures[0]!;
  console.log(`${events.length} events of ${average} bytes on average, best of ${ROUNDS} passes, node ${process.version}`);
  for (const f of figures) {
    const ratio = baseline.mbPerSecond / f.mbPerSecond;
    console.log(`${f.name.padEnd(32)} ${f.mbPerSecond.toFixed(1).padStart(7)} MB/s ${Math.round(f.eventsPerSecond).toString().padStart(9)} events/s  ${ratio.toFixed(2)}x the time of JSON.parse`);
  }
  const strict = figures[2]!;
  console.log(`target ${TARGET_EVENTS_PER_SECOND} events/s: parseStrictJson alone uses ${((100 * TARGET_EVENTS_PER_SECOND) / strict.eventsPerSecond).toFixed(1)}% of one core`);
}

run().catch((err) => {
  console.error(err);
  process.exit(1);
});
