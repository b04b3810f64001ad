// Segment calls shaped like a shop's traffic (page, Product Viewed, Product Added, Order Completed, identify),
// deterministic per seed, for the ingest benchmark's load generator and its in-process baseline.
import { seededRandom } from '../test/support/seeded-random';


const CATEGORIES = ['Shoes', 'Jackets', 'Trousers', 'Shirts', 'Bags', 'Hats', 'Socks', 'Watches', 'Sunglasses', 'Belts', 'Knitwear', 'Dresses'];
const BRANDS = ['Northwind', 'Contoso', 'Fabrikam', 'Tailspin', 'Adventure Works', 'Wide World'];
const ADJECTIVES = ['Trail', 'Classic', 'Merino', 'Waxed', 'Slim', 'Linen', 'Canvas', 'Leather', 'Alpine', 'Coastal'];
const PRODUCTS = 5000;
const AGENTS = ['Mozilla/5.0 (Macintosh) Safari/605.1.15', 'Mozilla/5.0 (Windows NT 10.0) Chrome/124.0', 'Mozilla/5.0 (iPhone) Mobile/15E148'];

export type Call = Record<string, unknown>;

export interface CallSource {
  /** One identify per returning customer of this lane (their anonymousId joined to their userId): sent before timing. */
  seedCalls(now: number): Call[];
  /** The next call; `now` is the event's time (epoch ms). */
  next(now: number): Call;
}

export interface CallSourceOptions {
  seed: number;
  /** Returning customers, `user-0` … `user-<customers - 1>`. */
  customers: number;
  /** Share of calls from a customer never seen before (a new visitor: their first call joins two ids). */
  newCustomerShare: number;
  /** Track calls only (Product Viewed, Product Added, Order Completed, in the same proportions), for POST /v1/track. */
  trackOnly?: boolean;
  /** Only customers with `n % lanes === lane`: one lane's customers go through one connection, in order, like one device. */
  lane?: number;
  lanes?: number;
}

function product(index: number): Record<string, unknown> {
  const category = CATEGORIES[index % CATEGORIES.length]!;
  const name = `${ADJECTIVES[index % ADJECTIVES.length]} ${category.replace(/s$/, '').toLowerCase()} ${index}`;
  return {
    product_id: `prod-${index.toString().padStart(5, '0')}`,
    category,
    name,
    brand: BRANDS[index % BRANDS.length],
    price: 9.99 + ((index * 37) % 290),
    url: `https://shop.example.com/p/${index}`,
  };
}

function hex(random: () => number, length: number): string {
  let out = '';
  while (out.length < length) out += Math.floor(random() * 0x100000000).toString(16).padStart(8, '0');
  return out.slice(0, length);
}

/** analytics-node's messageId shape: time first, so ids arrive nearly in index order, as they do from real clients. */
function messageId(random: () => number, now: number): string {
  const h = hex(random, 32);
  return `node-next-${now}-${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20)}`;
}

/**
 * Calls as a browser-side Segment library relays them (every call carries the userId and the visitor's
 * anonymousId): 25 % page, 45 % Product Viewed, 15 % Product Added, 5 % Order Completed, 10 % identify;
 * 480–620 bytes of JSON, 540 on average. Returning customers are drawn uniformly.
 */
export function callSource(options: CallSourceOptions): CallSource {
  const random = seededRandom(options.seed);
  const lanes = options.lanes ?? 1;
  const lane = options.lane ?? 0;
  const perLane = Math.ceil((options.customers - lane) / lanes);
  let newCustomers = 0;
  const ip = (n: number) => `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
  const anonymousIdOf = (customer: number) => `anon-${((customer * 2654435761) >>> 0).toString(16)}-${customer}`;
  const identify = (customer: number) => ({
    email: `user-${customer}@example.com`,
    first_name: 'Sam',
    last_name: `Customer ${customer}`,
    plan: customer % 5 === 0 ? 'member' : 'guest',
    timezone: 'America/New_York',
    consent: { email_marketing: customer % 3 !== 0 },
  });

  const call = (customer: number, now: number, roll: number): Call => {
    const userId = `user-${customer}`;
    const anonymousId = anonymousIdOf(customer);
    const timestamp = new Date(now).toISOString();
    const context = {
      library: { name: 'analytics-node-next', version: '3.1.0' },
      ip: ip(customer),
      userAgent: AGENTS[customer % AGENTS.length],
    };
    const base = { userId, anonymousId, messageId: messageId(random, now), timestamp, context };
    const p = product(Math.floor(random() * PRODUCTS));
    if (roll < 0.25) {
      return {
        type: 'page',
        ...base,
        name: 'Product Detail',
        category: p.category,
        properties: { path: `/p/${p.product_id}`, url: p.url, title: `${p.name} | Example Shop`, referrer: 'https://www.google.com/' },
      };
    }
    if (roll < 0.7) return { type: 'track', ...base, event: 'Product Viewed', properties: { ...p, currency: 'USD', position: 1 + Math.floor(random() * 24) } };
    if (roll < 0.85) return { type: 'track', ...base, event: 'Product Added', properties: { ...p, currency: 'USD', quantity: 1 + Math.floor(random() * 3) } };
    if (roll < 0.9) {
      const items = [p, product(Math.floor(random() * PRODUCTS))].map((item) => ({ product_id: item.product_id, price: item.price, quantity: 1 }));
      const total = Math.round(items.reduce((sum, item) => sum + (item.price as number), 0) * 100) / 100;
      return {
        type: 'track',
        ...base,
        event: 'Order Completed',
        properties: { order_id: `ord-${hex(random, 10)}`, total, revenue: total, shipping: 4.95, tax: Math.round(total * 8) / 100, currency: 'USD', products: items },
      };
    }
    return { type: 'identify', ...base, traits: identify(customer) };
  };

  return {
    seedCalls(now) {
      const calls: Call[] = [];
      for (let customer = lane; customer < options.customers; customer += lanes) calls.push(call(customer, now, 1));
      return calls;
    },
    next(now) {
      const fresh = random() < options.newCustomerShare;
      const customer = fresh ? options.customers + lane + lanes * newCustomers++ : lane + lanes * Math.floor(random() * perLane);
      // The track calls hold the rolls from 0.25 to 0.9.
      return call(customer, now, options.trackOnly ? 0.25 + 0.65 * random() : random());
    },
  };
}
