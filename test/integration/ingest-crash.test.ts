// Crash safety of ingest: `microflows server` is SIGKILLed while clients send at full speed, then started again
// on the same database. Every event that got a 200 must be stored, none twice, and every stored event must be
// folded into its profile exactly once (the fold shares the event's transaction).
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDevServer, type DevServer } from '../../cli/dev-server';
import { SEGMENT_ENTERED, SEGMENT_EXITED } from '../../core/segment-membership';
import type { Store } from '../../store/store';
import { openPostgresStore } from '../../store/postgres';
import { openSqliteStore } from '../../store/sqlite';
import { postgresSkipReason, throwawayDatabase } from '../support/store-backends';
import { startServerProcess } from '../support/worker-process';

const WRITE_KEY = 'crash-write-key';
const AUTH = `Basic ${Buffer.from(`${WRITE_KEY}:`).toString('base64')}`;
const CUSTOMERS = 50;

function kill(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  return new Promise((done) => {
    if (child.exitCode !== null || child.signalCode !== null) return done();
    child.once('exit', () => done());
    child.kill(signal);
  });
}

let sequence = 0;
/** Every call made, by messageId, so a retry resends exactly what was sent. */
const sent = new Map<string, Record<string, unknown>>();
function nextEvent(): { messageId: string; body: Record<string, unknown> } {
  const n = ++sequence;
  const messageId = `crash-${process.pid}-${n}`;
  const userId = `crash-customer-${n % CUSTOMERS}`;
  // Mostly views; every fifth an order, so each profile's orders_count can be checked against its stored orders.
  const event = n % 5 === 0 ? 'Order Completed' : 'Product Viewed';
  const properties = event === 'Order Completed' ? { order_id: `o-${n}`, total: 10 } : { product_id: `p-${n % 17}`, category: `c-${n % 3}` };
  const body = { userId, event, properties, messageId };
  sent.set(messageId, body);
  return { messageId, body };
}

/** Sends as fast as `connections` parallel clients can until stopped; returns the messageIds that got a 200. */
function sendAtFullSpeed(url: string, connections: number): { stop: () => Promise<{ acked: Set<string>; unacked: Set<string> }>; ackedCount: () => number } {
  const acked = new Set<string>();
  const unacked = new Set<string>();
  let running = true;
  const loop = async () => {
    while (running) {
      // Alternate single tracks and small batches: both paths must be crash-safe.
      const events = sequence % 3 === 0 ? Array.from({ length: 20 }, nextEvent) : [nextEvent()];
      const path = events.length > 1 ? '/v1/batch' : '/v1/track';
      const body = events.length > 1 ? { batch: events.map((e) => ({ type: 'track', ...e.body })) } : events[0]!.body;
      events.forEach((e) => unacked.add(e.messageId));
      try {
        const res = await fetch(`${url}${path}`, { method: 'POST', headers: { authorization: AUTH, 'content-type': 'application/json' }, body: JSON.stringify(body) });
        if (res.status === 200) {
          events.forEach((e) => {
            unacked.delete(e.messageId);
            acked.add(e.messageId);
          });
        }
        await res.arrayBuffer();
      } catch {
        // The server died mid-request: these stay unacked (stored or not — the client would retry them).
        if (!running) return;
        await new Promise((r) => setTimeout(r, 5));
      }
    }
  };
  const loops = Array.from({ length: connections }, loop);
  return {
    ackedCount: () => acked.size,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return { acked, unacked };
    },
  };
}

type CrashBackend = { env: Record<string, string>; open: () => Store; cleanup: () => Promise<void> };

/** Each backend's store for one crash run; PostgreSQL's run is registered as skipped when TEST_DATABASE_URL is unset. */
const backends: Array<{ name: 'sqlite' | 'postgres'; env: () => Promise<CrashBackend> }> = [
  {
    name: 'sqlite',
    env: async () => {
      const dir = mkdtempSync(join(tmpdir(), 'microflows-crash-'));
      const file = join(dir, 'store.sqlite');
      return { env: { MICROFLOWS_SQLITE_PATH: file, MICROFLOWS_DATA_DIR: dir }, open: () => openSqliteStore(file), cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: 'postgres',
    env: async () => {
      const database = throwawayDatabase(process.env.TEST_DATABASE_URL ?? '');
      await database.create();
      const dir = mkdtempSync(join(tmpdir(), 'microflows-crash-'));
      return {
        env: { DATABASE_URL: database.url, MICROFLOWS_DATA_DIR: dir },
        open: () => openPostgresStore(database.url),
        cleanup: async () => {
          await database.drop();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
];
const postgresSkipped = postgresSkipReason();
if (postgresSkipped) process.stdout.write(`ingest-crash: PostgreSQL tests skipped because ${postgresSkipped}\n`);

describe('ingest survives SIGKILL', () => {
  let temporal: DevServer;

  beforeAll(async () => {
    temporal = await startDevServer({ dataDir: mkdtempSync(join(tmpdir(), 'microflows-crash-temporal-')), headless: true });
  }, 120_000);

  afterAll(async () => {
    await temporal?.stop();
  });

  for (const backend of backends) {
    const skip = backend.name === 'postgres' ? postgresSkipped : null;
    (skip ? it.skip : it)(`on ${backend.name}: every acknowledged event is stored once and folded once${skip ? ` (skipped: ${skip})` : ''}`, async () => {
      const { env, open, cleanup } = await backend.env();
      // No flows: this is about the write path, so no event owes Temporal a signal (dispatch has its own crash test).
      const flowsDir = mkdtempSync(join(tmpdir(), 'microflows-crash-flows-'));
      const serverEnv = { ...env, TEMPORAL_ADDRESS: temporal.address, MICROFLOWS_SEARCH_ATTRIBUTES: 'false', MICROFLOWS_FLOWS_DIR: flowsDir };
      let server = await startServerProcess({ ...serverEnv, MICROFLOWS_WRITE_KEY: WRITE_KEY });
      let store: Store | undefined;
      try {
        const load = sendAtFullSpeed(server.url, 8);
        // Kill only once plenty has been acknowledged, so the crash lands mid-stream.
        const deadline = Date.now() + 60_000;
        while (load.ackedCount() < 1500 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        await kill(server.child, 'SIGKILL');
        const { acked, unacked } = await load.stop();
        expect(acked.size).toBeGreaterThanOrEqual(1500);

        server = await startServerProcess({ ...serverEnv, MICROFLOWS_WRITE_KEY: WRITE_KEY });
        // The client retries what it never saw acknowledged, and (as clients do after a timeout) some that it did.
        const retries = [...unacked, ...[...acked].slice(0, 200)];
        for (let i = 0; i < retries.length; i += 100) {
          const batch = retries.slice(i, i + 100).map((messageId) => ({ type: 'track', ...sent.get(messageId)! }));
          const res = await fetch(`${server.url}/v1/batch`, { method: 'POST', headers: { authorization: AUTH, 'content-type': 'application/json' }, body: JSON.stringify({ batch }) });
          expect(res.status).toBe(200);
        }
        await kill(server.child, 'SIGTERM');

        store = open();
        const stored = new Map<string, number>();
        const orders = new Map<string, number>();
        for (let c = 0; c < CUSTOMERS; c++) {
          const customerId = `crash-customer-${c}`;
          for (const event of await store.eventsOf(customerId)) {
            // The server's own record of segment changes (Segment Entered / Exited) is not ingested traffic.
            if (event.name === SEGMENT_ENTERED || event.name === SEGMENT_EXITED) continue;
            stored.set(event.messageId, (stored.get(event.messageId) ?? 0) + 1);
            if (event.name === 'Order Completed') orders.set(customerId, (orders.get(customerId) ?? 0) + 1);
          }
        }
        const missing = [...acked].filter((id) => !stored.has(id));
        expect(missing).toEqual([]);
        expect([...stored.entries()].filter(([, n]) => n > 1)).toEqual([]);
        expect(stored.size).toBe(acked.size + unacked.size);
        // The profile fold committed with each event: no order lost from, or counted twice in, orders_count.
        for (let c = 0; c < CUSTOMERS; c++) {
          const customerId = `crash-customer-${c}`;
          expect({ customerId, orders: (await store.getProfile(customerId))?.computed.orders_count ?? 0 }).toEqual({ customerId, orders: orders.get(customerId) ?? 0 });
        }
      } finally {
        await kill(server.child, 'SIGKILL');
        await store?.close();
        await cleanup();
        rmSync(flowsDir, { recursive: true, force: true });
      }
    }, 180_000);
  }
});
