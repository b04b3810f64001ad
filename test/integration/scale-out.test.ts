// Scaled out as the README says — two `server` and two `worker` processes on one PostgreSQL and one Temporal dev
// server — a customer's events reach the arbiter in arrival order, not in their own time order. Bursts for 50
// customers alternate servers; some `Product Added` calls arrive after the customer's later `Order Completed`; every
// call is retried on the other server. No buyer gets a cart email (the abandoners do), no segment is entered twice
// or left before it was entered, a customer has one arbiter at a time, and every event is stored once.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { startDevServer, type DevServer } from '../../cli/dev-server';
import { SEGMENT_ENTERED, SEGMENT_EXITED } from '../../core/segment-membership';
import { openPostgresStore } from '../../store/postgres';
import type { KyselyStore } from '../../store/kysely-store';
import { basicAuth, waitUntil } from '../support/http';
import { startSmtpSink, type SmtpSink } from '../support/smtp-sink';
import { PROJECT_ROOT, tempDir, WRITE_KEY } from '../support/stack';
import { describeOn, throwawayDatabase } from '../support/store-backends';
import { spawnWorker, startServerProcess, stopProcess, type ServerProcess } from '../support/worker-process';

const CUSTOMERS = 50;
type Kind = 'buys-in-order' | 'add-arrives-late' | 'abandons';
const kindOf = (i: number): Kind => (i < 20 ? 'buys-in-order' : i < 40 ? 'add-arrives-late' : 'abandons');

describeOn('postgres', 'two servers and two workers on one PostgreSQL and one Temporal', () => {
  let devServer: DevServer;
  let smtp: SmtpSink;
  let store: KyselyStore;
  let database: ReturnType<typeof throwawayDatabase>;
  let client: Client;
  let dataDir: string;
  const servers: ServerProcess[] = [];
  const workers: ChildProcess[] = [];
  const sent = new Set<string>();

  beforeAll(async () => {
    dataDir = tempDir('scale-out');
    database = throwawayDatabase(process.env.TEST_DATABASE_URL ?? '');
    await database.create();
    devServer = await startDevServer({ dataDir: path.join(dataDir, 'temporal'), headless: true });
    smtp = await startSmtpSink();
    const env = {
      TEMPORAL_ADDRESS: devServer.address,
      DATABASE_URL: database.url,
      MICROFLOWS_DATA_DIR: dataDir,
      MICROFLOWS_FLOWS_DIR: path.join(PROJECT_ROOT, 'test/fixtures/scale-flows'),
      MICROFLOWS_PUBLIC_URL: 'http://shop.example.test',
      MICROFLOWS_SIGNING_SECRET: 'scale-out-test-secret',
      SMTP_URL: smtp.url,
      MICROFLOWS_WRITE_KEY: WRITE_KEY,
      TEMPORAL_TASK_QUEUE: `scale-${process.pid}`,
    };
    // The first server migrates the database and registers the flows; the rest start on it.
    servers.push(await startServerProcess(env));
    servers.push(await startServerProcess(env));
    workers.push(spawnWorker(env), spawnWorker(env));
    store = openPostgresStore(database.url);
    client = new Client({ connection: await Connection.connect({ address: devServer.address }) });
  }, 180_000);

  afterAll(async () => {
    for (const child of [...workers, ...servers.map((s) => s.child)]) await stopProcess(child, 'SIGTERM');
    await client?.connection.close();
    await store?.close();
    await smtp?.close();
    await devServer?.stop();
    await database?.drop();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  async function call(server: ServerProcess, kind: 'identify' | 'track', body: Record<string, unknown>): Promise<void> {
    const res = await fetch(`${server.url}/v1/${kind}`, { method: 'POST', headers: { authorization: basicAuth(WRITE_KEY), 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect({ status: res.status, body: await res.text() }).toMatchObject({ status: 200 });
    sent.add(String(body.messageId));
  }

  /** One customer's burst: each call to one server, then again (same messageId) to the other, as a client retries. */
  async function burst(i: number, base: number): Promise<void> {
    const customer = `scale-${i}`;
    const [a, b] = i % 2 === 0 ? [servers[0]!, servers[1]!] : [servers[1]!, servers[0]!];
    const twice = async (first: ServerProcess, kind: 'identify' | 'track', body: Record<string, unknown>) => {
      await call(first, kind, body);
      await call(first === a ? b : a, kind, body);
    };
    const at = (offset: number) => new Date(base + offset).toISOString();
    const identify = { userId: customer, messageId: `${customer}-id`, traits: { email: `${customer}@example.com`, consent: { email_marketing: true } }, timestamp: at(0) };
    const added = { userId: customer, messageId: `${customer}-add`, event: 'Product Added', properties: { product_id: 'sku-1', name: 'Trail Shoe', price: 89.5 }, timestamp: at(1000) };
    const ordered = { userId: customer, messageId: `${customer}-order`, event: 'Order Completed', properties: { order_id: `o-${i}`, total: 89.5 }, timestamp: at(2000) };
    await twice(a, 'identify', identify);
    if (kindOf(i) === 'buys-in-order') {
      await twice(a, 'track', added);
      await twice(b, 'track', ordered);
    } else if (kindOf(i) === 'add-arrives-late') {
      // The order reaches the servers first; the add that preceded it in time arrives after it, on the other server.
      await twice(a, 'track', ordered);
      await twice(b, 'track', added);
    } else {
      await twice(a, 'track', added);
    }
  }

  it('mails the abandoners and no buyer, enters no segment twice, runs one arbiter per customer and stores every event once', async () => {
    const base = Date.now() - 60_000;
    await Promise.all(Array.from({ length: CUSTOMERS }, (_, i) => burst(i, base)));

    const abandoners = Array.from({ length: CUSTOMERS }, (_, i) => i).filter((i) => kindOf(i) === 'abandons').map((i) => `scale-${i}@example.com`);
    // Every run that started has ended (converted, or mailed and completed): any cart email is in the sink by then.
    const entries = await waitUntil(
      'every cart run to end',
      async () => {
        const all = (await Promise.all(Array.from({ length: CUSTOMERS }, (_, i) => store.flowEntriesOf(`scale-${i}`)))).flat();
        return all.length >= abandoners.length && all.every((e) => e.outcome !== null) ? all : undefined;
      },
      120_000,
    );
    expect([...new Set(smtp.messages.map((m) => m.to))].sort()).toEqual([...abandoners].sort());
    expect(smtp.messages).toHaveLength(abandoners.length);
    expect(entries.filter((e) => e.outcome === 'completed').map((e) => e.customerId).sort()).toEqual(abandoners.map((a) => a.replace('@example.com', '')).sort());

    // A late add was judged on its own time: the order had come first, so it started nothing, and the log says why.
    for (let i = 20; i < 40; i++) {
      const decisions = await store.decisionsOf(`scale-${i}`);
      expect({ i, started: decisions.filter((d) => d.outcome === 'started').length }).toEqual({ i, started: 0 });
      expect(decisions.some((d) => d.outcome === 'skipped' && d.reason.includes("the flow's goal came first"))).toBe(true);
    }

    for (let i = 0; i < CUSTOMERS; i++) {
      const customer = `scale-${i}`;
      const events = await store.eventsOf(customer);
      // Every event stored once, the segment changes aside.
      const own = events.filter((e) => e.name !== SEGMENT_ENTERED && e.name !== SEGMENT_EXITED).map((e) => e.messageId).sort();
      // (eventsOf lists track events: the identify is checked through the profile's email below.)
      expect({ customer, own }).toEqual({ customer, own: [...sent].filter((id) => id.startsWith(`${customer}-`) && !id.endsWith('-id')).sort() });
      expect((await store.getProfile(customer))?.email).toBe(`${customer}@example.com`);
      // Per segment, the changes alternate entered, exited, … in time order, never leaving before entering.
      const bySegment = new Map<string, Array<{ change: string; at: number }>>();
      for (const e of events.filter((e) => e.name === SEGMENT_ENTERED || e.name === SEGMENT_EXITED)) {
        const list = bySegment.get(String(e.properties.segment_id)) ?? [];
        list.push({ change: e.name === SEGMENT_ENTERED ? 'entered' : 'exited', at: e.timestamp });
        bySegment.set(String(e.properties.segment_id), list);
      }
      for (const [segment, changes] of bySegment) {
        const ordered = [...changes].sort((x, y) => x.at - y.at);
        expect({ customer, segment, changes: ordered.map((c) => c.change) }).toEqual({ customer, segment, changes: ordered.map((_, n) => (n % 2 === 0 ? 'entered' : 'exited')) });
      }
      // The buyers are recent purchasers, entered at the order's own time.
      if (kindOf(i) !== 'abandons') expect({ customer, segments: (await store.segmentsOf(customer)).map((m) => `${m.segmentId}@${m.enteredAt - base}`) }).toMatchObject({ customer, segments: expect.arrayContaining(['recent-purchasers@2000']) });
    }

    // One arbiter per customer: at most one open per customer id at any time, and none left once nothing is in
    // flight (each ends after its last run reported back; visibility catches up within seconds).
    const arbiters = async () => {
      const ids: string[] = [];
      for await (const run of client.workflow.list({ query: `WorkflowType = 'customerWorkflow' AND ExecutionStatus = 'Running'` })) ids.push(run.workflowId);
      return ids.filter((id) => id.startsWith('customer/scale-'));
    };
    const open = await arbiters();
    expect(open.length).toBe(new Set(open).size);
    await waitUntil('every arbiter to end', async () => (await arbiters()).length === 0, 60_000);
  }, 300_000);
});
