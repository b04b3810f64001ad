// Ingest hands events to Temporal through the real TemporalDispatcher, to a real time-skipping Temporal server and
// worker running the arbiter (SQLite and PostgreSQL): a trigger event is signalled to customer/<id> only once its
// transaction committed, and stays stored as owing a dispatch until the signal went out; a redelivered messageId is
// not signalled again; an event no flow listens to never reaches Temporal. What the dispatcher sends is observed by
// a client interceptor on the runtime's own Temporal client: it reads the store on a connection of its own (so it
// sees committed rows only) before letting the signal through, and can hold a signal for the test to act meanwhile.
import fs from 'node:fs';
import { Client, type WorkflowClientInterceptor } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { startRuntime, type Runtime } from '../../cli/runtime';
import { customerWorkflowId } from '../../core/arbiter-state';
import { openPostgresStore } from '../../store/postgres';
import { openSqliteStore } from '../../store/sqlite';
import type { Store, StoredEvent } from '../../store/store';
import { decisionsQuery } from '../../workflows/messages';
import { post } from '../support/http';
import { fileTimeSkippingServer, stackDatabases, tempDir, testConfig, workflowBundle, WRITE_KEY } from '../support/stack';
import { describeOn, throwawayDatabase } from '../support/store-backends';

/** A customerEvent signal as the dispatcher sent it, with the event's row as a separate connection read it just before. */
interface SentSignal {
  workflowId: string;
  via: 'signalWithStart' | 'signal';
  messageId: string;
  name: string | null;
  storedWhenSent: Pick<StoredEvent, 'messageId' | 'dispatched'> | undefined;
}

/** One time-skipping server for the file, started by the first suite that runs. */
const temporal = fileTimeSkippingServer();

let sequence = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${++sequence}`;

for (const database of stackDatabases('dispatch')) {
  describeOn(database, `dispatch to Temporal on ${database}`, () => {
    let runtime: Runtime;
    let observer: Store;
    let dataDir: string;
    let dropDatabase: () => Promise<void> = async () => undefined;
    const sent: SentSignal[] = [];
    const held = new Map<string, { reached(): void; released: Promise<void>; release(): void }>();

    /** Holds the signal of this event once the dispatcher sends it; `reached` resolves then, `release` lets it go. */
    function hold(messageId: string): { reached: Promise<void>; release(): void } {
      let reached!: () => void;
      let release!: () => void;
      const reachedPromise = new Promise<void>((resolve) => (reached = resolve));
      const released = new Promise<void>((resolve) => (release = resolve));
      held.set(messageId, { reached, released, release });
      return { reached: reachedPromise, release };
    }

    const observe = async (workflowId: string, via: SentSignal['via'], args: unknown[]) => {
      const event = args[0] as { messageId: string; name: string | null };
      const customerId = workflowId.replace(/^customer\//, '');
      const row = (await observer.eventsOf(customerId)).find((e) => e.messageId === event.messageId);
      sent.push({ workflowId, via, messageId: event.messageId, name: event.name, storedWhenSent: row && { messageId: row.messageId, dispatched: row.dispatched } });
      const gate = held.get(event.messageId);
      if (gate) {
        gate.reached();
        await gate.released;
      }
    };
    const interceptor: WorkflowClientInterceptor = {
      async signalWithStart(input, next) {
        if (input.signalName === 'customerEvent') await observe(input.options.workflowId, 'signalWithStart', input.signalArgs);
        return next(input);
      },
      async signal(input, next) {
        if (input.signalName === 'customerEvent') await observe(input.workflowExecution.workflowId, 'signal', input.args);
        return next(input);
      },
    };

    beforeAll(async () => {
      const env = await temporal();
      dataDir = tempDir('dispatch');
      const overrides: Record<string, string> = { MICROFLOWS_DATA_DIR: dataDir, MICROFLOWS_SEARCH_ATTRIBUTES: 'false' };
      if (database === 'postgres') {
        const throwaway = throwawayDatabase(process.env.TEST_DATABASE_URL ?? '');
        await throwaway.create();
        dropDatabase = () => throwaway.drop();
        overrides.DATABASE_URL = throwaway.url;
      }
      const config = testConfig(overrides);
      const client = new Client({ connection: env.connection, namespace: env.namespace, interceptors: { workflow: [interceptor] } });
      // Shipped flows: cart-abandonment starts on Product Added; no flow starts on or listens for Product Viewed.
      runtime = await startRuntime({ config, temporal: { client, nativeConnection: env.nativeConnection }, workflowBundle: await workflowBundle(), schedule: false, log: () => undefined });
      observer = database === 'postgres' ? openPostgresStore(config.databaseUrl!) : openSqliteStore(config.sqlitePath);
    }, 120_000);

    // A failed test must not leave the dispatcher stuck on a held signal.
    afterEach(() => {
      for (const gate of held.values()) gate.release();
      held.clear();
    });

    afterAll(async () => {
      await runtime?.stop();
      await observer?.close();
      await dropDatabase();
      if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    });

    async function identify(customer: string): Promise<void> {
      const traits = { email: `${customer}@example.com`, consent: { email_marketing: true } };
      expect((await post(`${runtime.url}/v1/identify`, { userId: customer, traits }, WRITE_KEY)).status).toBe(200);
    }

    async function track(body: Record<string, unknown>): Promise<void> {
      expect((await post(`${runtime.url}/v1/track`, body, WRITE_KEY)).status).toBe(200);
    }

    /** Every dispatch the requests so far caused has been sent, and the segment updates they queued have run. */
    async function settled(): Promise<void> {
      await runtime.segments.idle();
      await runtime.dispatcher.idle();
    }

    /** The customerEvent signals customer/<id> received, from its history: what Temporal actually got. */
    async function signalsReceived(customerId: string): Promise<string[]> {
      const history = await runtime.client.workflow.getHandle(customerWorkflowId(customerId)).fetchHistory();
      const sealed = (history.events ?? [])
        .map((e) => e.workflowExecutionSignaledEventAttributes)
        .filter((a) => a?.signalName === 'customerEvent')
        .map((a) => a!.input!.payloads![0]!);
      // Histories hold encrypted payloads: the runtime's codec opens them.
      return (await runtime.payloads.codec.decode(sealed)).map((payload) => (defaultPayloadConverter.fromPayload(payload) as { messageId: string }).messageId);
    }

    it('signals a trigger event once its transaction committed, owing its dispatch until then; a copy sent meanwhile is not signalled', async () => {
      const customer = unique('dispatch');
      await identify(customer);
      const added = { userId: customer, event: 'Product Added', properties: { product_id: 'p1' }, messageId: unique('added') };
      const signal = hold(added.messageId);
      await track(added);
      // Committed and owed: a crash from here until the signal is out would have it sent at the next start.
      expect((await observer.eventsOf(customer)).map((e) => [e.messageId, e.dispatched])).toEqual([[added.messageId, false]]);
      // The dispatch was queued when the request was answered: it either reaches the held signal or ends without one.
      expect(await Promise.race([signal.reached.then(() => 'signal sent'), runtime.dispatcher.idle().then(() => 'dispatch ended without a signal')])).toBe('signal sent');
      expect(await observer.listUndispatched(100_000)).toContainEqual(expect.objectContaining({ messageId: added.messageId }));
      // The client retries before the first dispatch is done: stored once, and the copy is not dispatched.
      await track(added);
      signal.release();
      await settled();

      expect(sent.filter((s) => s.workflowId === customerWorkflowId(customer))).toEqual([
        // Readable on another connection when the signal went out (committed), and still owing its dispatch then.
        { workflowId: customerWorkflowId(customer), via: 'signalWithStart', messageId: added.messageId, name: 'Product Added', storedWhenSent: { messageId: added.messageId, dispatched: false } },
      ]);
      expect(await signalsReceived(customer)).toEqual([added.messageId]);
      expect((await observer.eventsOf(customer)).map((e) => [e.messageId, e.dispatched])).toEqual([[added.messageId, true]]);
      expect(await observer.listUndispatched(100_000)).not.toContainEqual(expect.objectContaining({ messageId: added.messageId }));
      // The arbiter handled it: one decision, for this event.
      const decisions = await runtime.client.workflow.getHandle(customerWorkflowId(customer)).query(decisionsQuery);
      expect(decisions.map((d) => [d.flowId, d.outcome, d.eventMessageId])).toEqual([['cart-abandonment', 'started', added.messageId]]);
    });

    it('does not signal a messageId redelivered after its dispatch, and never sends Temporal an event no flow listens to', async () => {
      const customer = unique('dispatch');
      const added = { userId: customer, event: 'Product Added', properties: { product_id: 'p1' }, messageId: unique('added') };
      const viewed = { userId: customer, event: 'Product Viewed', properties: { product_id: 'p1' }, messageId: unique('viewed') };
      await identify(customer);
      await track(added);
      await settled();
      // The arbiter runs on (its cart flow waits an hour that never passes here): any signal to it would land.
      expect((await runtime.client.workflow.getHandle(customerWorkflowId(customer)).describe()).status.name).toBe('RUNNING');
      await track(added);
      await track(viewed);
      await settled();

      expect(sent.filter((s) => s.workflowId === customerWorkflowId(customer)).map((s) => [s.via, s.messageId])).toEqual([['signalWithStart', added.messageId]]);
      expect(sent.filter((s) => s.name === 'Product Viewed')).toEqual([]);
      expect(await signalsReceived(customer)).toEqual([added.messageId]);
      // Stored once each; the view was stored as owing nothing, so no recovery would ever send it either.
      expect((await observer.eventsOf(customer)).map((e) => [e.name, e.messageId, e.dispatched])).toEqual([
        ['Product Viewed', viewed.messageId, true],
        ['Product Added', added.messageId, true],
      ]);
    });
  });
}
