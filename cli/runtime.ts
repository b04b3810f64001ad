// Wires the real parts together — store, flows, catalog, templates, Temporal client and worker, HTTP server —
// the same way for `microflows start`, the integration tests and the benchmarks.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { Client, type ClientOptions, Connection, defaultGrpcRetryOptions, makeGrpcRetryInterceptor, ScheduleAlreadyRunning, ScheduleOverlapPolicy } from '@temporalio/client';
import type { DataConverter, Duration } from '@temporalio/common';
import { NativeConnection, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createActivities } from '../activities';
import { createSmtpMailer, type SmtpMailer } from '../activities/mailer';
import { TemplateLibrary } from '../activities/templates';
import type { Config } from '../core/config';
import { ConfigError, InvalidFileError } from '../core/errors';
import { insecureStartMessage, insecureStartProblems, isLoopbackHost } from '../core/start-policy';
import { KEY_PREFIX } from '../core/api-keys';
import type { FlowDefinition } from '../core/flow-types';
import { createApp, type AppDeps } from '../server/app';
import { TemporalDispatcher } from '../server/temporal-dispatcher';
import { MetricsFolder } from '../server/metrics-folder';
import { decideExperiments } from '../server/experiment-decider';
import { sendsTransactional } from '../core/suppression';
import { temporalTerminator } from '../server/customer-erasure';
import { openStore } from '../store/open-store';
import type { Store } from '../store/store';
import { catalogReader } from '../activities/catalog';
import { formatProblem } from '../core/errors';
import { syncCatalogDir } from './catalog-files';
import { loadFlowFiles } from './project-files';
import { loadSendPolicy } from './policy-file';
import type { SendPolicy } from '../core/send-policy';
import { loadBrandFile, requireBrandForMarketing } from './brand-file';
import { loadSegments, segmentIdsIn } from './segment-files';
import { SegmentEngine } from '../activities/segment-engine';
import { erasureNaming } from '../client/payload-keys';
import { codecOriginsOf } from '../server/codec-routes';
import { openPayloadEncryption, type PayloadEncryption } from './payload-encryption';

/**
 * The key that signs click, open and unsubscribe links: MICROFLOWS_SIGNING_SECRET, or one generated on first start
 * and kept in the data directory, so links in emails already sent stay valid across restarts.
 */
export function signingSecretOf(config: Pick<Config, 'signingSecret' | 'dataDir'>): string {
  if (config.signingSecret) return config.signingSecret;
  const file = join(config.dataDir, 'signing-secret');
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    mkdirSync(config.dataDir, { recursive: true });
    const secret = randomBytes(32).toString('hex');
    // 'wx': if another process created it meanwhile, this throws and we read theirs.
    try {
      writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
      return secret;
    } catch {
      return readFileSync(file, 'utf8').trim();
    }
  }
}

/**
 * The admin key of a development server: on loopback, with neither MICROFLOWS_ADMIN_KEY nor a stored admin key, one
 * is generated on first start and kept in the data directory (like the signing secret), so the admin API is never
 * open, and `start` prints it. null when the config or the store has admin keys, or off loopback (which refuses instead).
 */
export function developmentAdminKey(config: Pick<Config, 'adminKey' | 'dataDir' | 'host' | 'adminHost'>, hasStoredAdminKey: boolean): string | null {
  if (config.adminKey || hasStoredAdminKey || !isLoopbackHost(config.host) || !isLoopbackHost(config.adminHost ?? config.host)) return null;
  const file = join(config.dataDir, 'admin-key');
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    mkdirSync(config.dataDir, { recursive: true });
    const key = `${KEY_PREFIX.admin}${randomBytes(32).toString('base64url')}`;
    try {
      writeFileSync(file, `${key}\n`, { mode: 0o600, flag: 'wx' });
      return key;
    } catch {
      return readFileSync(file, 'utf8').trim();
    }
  }
}

/** Applies the HTTP limits (timeouts for headers, the whole request and idle keep-alive; a connection cap). */
function limitServer(server: http.Server, limits: Config['http']): void {
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.maxConnections = limits.maxConnections;
}

/** A listening server with the HTTP limits applied (exported for the tests of the limits). */
export async function listenOn(listener: http.RequestListener, port: number, host: string, limits: Config['http']): Promise<http.Server> {
  // Node enforces the header and request timeouts when it checks connections (every 30 s by default): checking every
  // second makes a 10 s limit mean about 10 s.
  const server = http.createServer({ connectionsCheckingInterval: 1_000 }, listener);
  limitServer(server, limits);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

function closeServer(server: http.Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/**
 * The same client with the data converter added: its class (a time-skipping test client stays one), connection,
 * namespace and interceptors kept.
 */
function withDataConverter(client: Client, dataConverter: DataConverter): Client {
  const { connection, namespace, interceptors, identity } = client.options;
  const ClientClass = client.constructor as new (options: ClientOptions) => Client;
  return new ClientClass({ connection, namespace, interceptors, identity, dataConverter });
}

export interface RuntimeOptions {
  config: Config;
  /**
   * Use these instead of connecting to config.temporalAddress (tests pass a TestWorkflowEnvironment's). The client's
   * connection, class and options are kept, with the payload codec added: `Runtime.client` is that copy.
   */
  temporal?: { client: Client; nativeConnection: NativeConnection };
  /** A pre-built workflow bundle (tests bundle once per file); otherwise the worker bundles workflows/. */
  workflowBundle?: WorkflowBundleWithSourceMap;
  /** Run a worker in this process (default true). */
  worker?: boolean;
  /** Run the HTTP server in this process (default true). */
  server?: boolean;
  /** Create or update the sweep Schedules (needs a server with Schedules; default true). */
  schedule?: boolean;
  sweepEvery?: Duration;
  /** How often the segment sweep runs (default config.segmentSweepEvery). */
  segmentSweepEvery?: Duration;
  /** Fold events into the report counters every config.metricsEvery (default true); tests that fold themselves pass false. */
  foldMetrics?: boolean;
  /** The environment the config came from, for the start checks (default process.env). */
  env?: Record<string, string | undefined>;
  /** Recompile templates when their files change (dev mode); config.watchTemplates, when set, wins. */
  watchTemplates?: boolean;
  log?: (message: string) => void;
}

export interface Runtime {
  config: Config;
  store: Store;
  client: Client;
  dispatcher: TemporalDispatcher;
  segments: SegmentEngine;
  templates: TemplateLibrary;
  worker: Worker | null;
  /** Base URL of the HTTP server, when running one. */
  url: string | null;
  /** Base URL of the admin API: `url` unless MICROFLOWS_ADMIN_PORT gives it a port of its own. */
  adminUrl: string | null;
  /** The admin key `start` generated for a development server (see developmentAdminKey), or null. */
  developmentAdminKey: string | null;
  /** Payload encryption: the keyring (subjectOf, shred), the codec and the data converter every client here uses. */
  payloads: PayloadEncryption;
  /** The send policy of flows/policy.yaml (caps, quiet hours), DEFAULT_SEND_POLICY without one; read at start and by reloadFlows. */
  policy: SendPolicy;
  /** Reload flow files: registers new versions; new entries take them, running customers keep theirs. */
  reloadFlows(): Promise<FlowDefinition[]>;
  stop(): Promise<void>;
}

/** The host of a `host:port` address (IPv6 in brackets). */
function hostOf(address: string): string {
  const bracketed = /^\[([^\]]+)\]/.exec(address);
  if (bracketed) return bracketed[1]!;
  const colon = address.lastIndexOf(':');
  return colon > 0 && address.indexOf(':') === colon ? address.slice(0, colon) : address;
}

/**
 * Why links in emails would point where recipients cannot follow them, or null. Without MICROFLOWS_PUBLIC_URL they
 * point at this process's HTTP address, which is right only for one process on one machine (`microflows start`):
 * not for a `worker` or `server` of a deployment, a Temporal elsewhere, or a server bound beyond loopback.
 */
export function publicUrlWarning(config: Pick<Config, 'publicUrl' | 'host' | 'port' | 'temporalAddress'>, roles: { worker: boolean; server: boolean }): string | null {
  if (config.publicUrl) return null;
  const reasons: string[] = [];
  if (!(roles.worker && roles.server)) reasons.push(`this process runs only the ${roles.worker ? 'worker' : 'HTTP server'} of a deployment`);
  if (config.temporalAddress && !isLoopbackHost(hostOf(config.temporalAddress))) reasons.push(`Temporal is elsewhere (TEMPORAL_ADDRESS=${config.temporalAddress})`);
  if (!isLoopbackHost(config.host)) reasons.push(`the HTTP server binds ${config.host}, beyond this machine`);
  if (reasons.length === 0) return null;
  const guess = `http://${config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host}:${config.port}`;
  return (
    `MICROFLOWS_PUBLIC_URL is unset while ${reasons.join(', and ')}: tracked links, the open pixel and unsubscribe links ` +
    `in emails will point at ${guess}, which recipients cannot reach. Set MICROFLOWS_PUBLIC_URL to the address the world ` +
    `reaches the HTTP server at (e.g. https://mail.shop.example), the same on every worker and server.`
  );
}

/** Connects to Temporal at `address`; a failure names the address and what to check. */
async function connectTemporal(address: string): Promise<{ connection: Connection; nativeConnection: NativeConnection }> {
  const explain = (err: unknown) =>
    new ConfigError(
      `cannot reach Temporal at ${address}: ${(err as Error)?.message ?? String(err)}. Check that a Temporal server is running and ` +
        `listening there and that this machine can reach it (firewall, DNS, TLS); TEMPORAL_ADDRESS sets the address ` +
        `(host:port), and without it \`microflows start\` runs an embedded dev server.`,
    );
  let connection: Connection;
  try {
    // grpc-js backs reconnects off up to 2 minutes by default: after an outage, signals would wait that long for a
    // channel that Temporal would already answer. 5 s keeps the redelivery of what was acked meanwhile prompt.
    connection = await Connection.connect({ address, channelArgs: { 'grpc.max_reconnect_backoff_ms': 5_000 } });
  } catch (err) {
    throw explain(err);
  }
  try {
    return { connection, nativeConnection: await NativeConnection.connect({ address }) };
  } catch (err) {
    await connection.close();
    throw explain(err);
  }
}

/**
 * /api/health's view of Temporal at `address`: its frontend's system info within the timeout means signals would get
 * through. A connection of its own, making one attempt per check: the client's retries would go on after the
 * health answer (and, at shutdown, after the connection closed).
 */
export function temporalHealth(address: string): NonNullable<AppDeps['temporal']> & { close(): Promise<void> } {
  const connection = Connection.lazy({ address, interceptors: [makeGrpcRetryInterceptor(defaultGrpcRetryOptions({ maxAttempts: 1 }))] });
  return {
    address,
    async check(timeoutMs) {
      await connection.withDeadline(Date.now() + timeoutMs, () => connection.workflowService.getSystemInfo({}));
    },
    close: () => connection.close(),
  };
}

/** The same, through a client this process was given (a test environment's), whose address it does not know. */
function temporalHealthOf(client: Client): NonNullable<AppDeps['temporal']> {
  return {
    address: null,
    async check(timeoutMs) {
      await client.connection.withDeadline(Date.now() + timeoutMs, () => client.workflowService.getSystemInfo({}));
    },
  };
}

export const SWEEP_SCHEDULE_ID = 'microflows-sweep';
export const SEGMENT_SWEEP_SCHEDULE_ID = 'microflows-segment-sweep';

/** Loads and validates flows/ and templates/, and records each flow version in the store. Refuses invalid files. */
export async function loadAndRegisterFlows(config: Config, store: Store): Promise<FlowDefinition[]> {
  const { flows, problems } = loadFlowFiles(config.flowsDir, config.templatesDir, segmentIdsIn(config.segmentsDir));
  if (problems.some((p) => p.severity === 'error')) throw new InvalidFileError(problems);
  for (const flow of flows) await store.registerFlowVersion(flow);
  return flows;
}

export async function ensureSweepSchedule(client: Client, taskQueue: string, every: Duration, kind: 'inactivity' | 'segments' = 'inactivity'): Promise<void> {
  const scheduleId = kind === 'inactivity' ? SWEEP_SCHEDULE_ID : SEGMENT_SWEEP_SCHEDULE_ID;
  const options = {
    scheduleId,
    spec: { intervals: [{ every }] },
    action: { type: 'startWorkflow' as const, workflowType: kind === 'inactivity' ? 'sweepWorkflow' : 'segmentSweepWorkflow', taskQueue, workflowId: `${scheduleId}-run` },
    // A sweep still running when the next is due: the next is skipped, never stacked.
    policies: { overlap: ScheduleOverlapPolicy.SKIP },
  };
  try {
    await client.schedule.create(options);
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await client.schedule.getHandle(scheduleId).update((previous) => ({ ...previous, spec: options.spec, action: options.action }));
  }
}

export async function startRuntime(options: RuntimeOptions): Promise<Runtime> {
  const { config } = options;
  const log = options.log ?? ((m: string) => console.log(m));
  const linksWarning = publicUrlWarning(config, { worker: options.worker !== false, server: options.server !== false });
  if (linksWarning) log(`[microflows] warning: ${linksWarning}`);
  const store = await openStore(config);
  const cleanups: Array<() => Promise<void> | void> = [() => store.close()];
  const stopAll = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  };
  try {
    await store.migrate();
    let devAdminKey: string | null = null;
    if (options.server !== false) {
      const hasStoredAdminKey = (await store.activeApiKeys()).some((key) => key.kind === 'admin');
      const problems = insecureStartProblems(config, options.env ?? process.env, hasStoredAdminKey);
      if (problems.length > 0) throw new ConfigError(insecureStartMessage(config, problems));
      devAdminKey = developmentAdminKey(config, hasStoredAdminKey);
    }
    const flows = await loadAndRegisterFlows(config, store);
    // A bad policy file stops the start like a bad flow file: sending without the caps someone wrote is worse.
    let policy = loadSendPolicy(config.flowsDir);
    const payloads = openPayloadEncryption(config, store);
    if (payloads.generatedMasterKeyFile) log(`[microflows] Temporal payloads are encrypted with the development master key in ${payloads.generatedMasterKeyFile}`);
    await payloads.keyring.ready();
    // Upserted, not replaced: products sent to PUT /api/catalog/products stay. A bad file stops the start.
    await syncCatalogDir(config.catalogDir, store, log);
    const brand = loadBrandFile(config.brandFile);
    const templates = new TemplateLibrary(config.templatesDir, { shopUrl: config.shopUrl, linkDomains: config.linkDomains, log, brand });
    requireBrandForMarketing(config.brandFile, brand, templates.marketingNames());
    for (const warning of templates.warnings) log(`[templates] ${formatProblem(warning)}`);
    if (config.watchTemplates ?? options.watchTemplates ?? false) {
      templates.watch();
      cleanups.push(() => templates.close());
    }
    const signingSecret = signingSecretOf(config);
    // Links in emails point at the public address; until this process's server listens, at HOST:PORT.
    let publicUrl = config.publicUrl ?? `http://${config.host === '0.0.0.0' ? '127.0.0.1' : config.host}:${config.port}`;

    let client: Client;
    let nativeConnection: NativeConnection;
    if (options.temporal) {
      nativeConnection = options.temporal.nativeConnection;
      client = withDataConverter(options.temporal.client, payloads.dataConverter);
    } else {
      if (!config.temporalAddress) throw new Error('startRuntime needs config.temporalAddress or options.temporal');
      const connected = await connectTemporal(config.temporalAddress);
      const { connection } = connected;
      nativeConnection = connected.nativeConnection;
      cleanups.push(() => connection.close());
      client = new Client({ connection, namespace: config.temporalNamespace, dataConverter: payloads.dataConverter });
      cleanups.push(() => nativeConnection.close());
    }

    const signals = {
      client,
      taskQueue: config.taskQueue,
      searchAttributes: config.searchAttributes,
      ...(config.pseudonymousIds ? { workflowKeyOf: (customerId: string) => payloads.keyring.workflowKeyOf(customerId) } : {}),
    };
    // Which flows send transactional email decides which a marketing-only suppression stops at entry (core/suppression).
    const dispatcher = new TemporalDispatcher(store, signals, flows, log, { sendsTransactional: (flow) => sendsTransactional(flow, (template) => templates.category(template)) });
    const segments = new SegmentEngine({ store, segments: loadSegments(config.segmentsDir), dispatcher, log, trackingGrantedByDefault: config.trackingDefault === 'granted' });
    await segments.syncDefinitions();

    let worker: Worker | null = null;
    if (options.worker !== false) {
      const smtp: SmtpMailer | null = config.smtpUrl ? createSmtpMailer(config.smtpUrl) : null;
      if (smtp) cleanups.push(() => smtp.close());
      worker = await Worker.create({
        connection: nativeConnection,
        namespace: config.temporalNamespace,
        taskQueue: config.taskQueue,
        // The bundle a test passes must have been made with the same failureConverterPath (test/support/stack.ts).
        dataConverter: payloads.dataConverter,
        ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : { workflowsPath: require.resolve('../workflows') }),
        activities: createActivities({
          store,
          templates,
          smtp,
          fromAddress: config.fromAddress,
          tracking: { secret: signingSecret, baseUrl: () => publicUrl, linkDomains: config.linkDomains, tokenTtlMs: config.trackingTokenTtlMs },
          trackingGrantedByDefault: config.trackingDefault === 'granted',
          catalog: catalogReader(store),
          signals,
          currentFlows: () => dispatcher.currentFlows(),
          segments,
          eventRetentionMs: config.eventRetentionMs,
          sendPolicy: () => policy,
          log,
        }),
      });
      const running = worker.run();
      const theWorker = worker;
      cleanups.push(async () => {
        if (theWorker.getState() === 'RUNNING') theWorker.shutdown();
        await running;
      });
    }

    if (options.schedule !== false) {
      await ensureSweepSchedule(client, config.taskQueue, options.sweepEvery ?? '1h');
      await ensureSweepSchedule(client, config.taskQueue, options.segmentSweepEvery ?? config.segmentSweepEvery, 'segments');
    }

    let url: string | null = null;
    let adminUrl: string | null = null;
    if (options.server !== false) {
      let temporal: AppDeps['temporal'] = temporalHealthOf(client);
      if (!options.temporal && config.temporalAddress) {
        const probe = temporalHealth(config.temporalAddress);
        cleanups.push(() => probe.close());
        temporal = probe;
      }
      const app = createApp({
        store,
        config: { ...config, signingSecret, adminKey: config.adminKey ?? devAdminKey },
        dispatcher,
        segments,
        flows: () => dispatcher.currentFlows(),
        segmentMinSize: config.segmentMinSize,
        templates,
        catalog: catalogReader(store),
        temporal,
        brand,
        workflows: temporalTerminator(client),
        ...erasureNaming(payloads.keyring),
        payloads: { codec: payloads.codec, allowedOrigins: codecOriginsOf(config) },
        log,
      });
      const separateAdmin = config.adminPort !== null;
      const server = await listenOn(separateAdmin ? app.publicListener : app, config.port, config.host, config.http);
      cleanups.push(() => closeServer(server));
      const base = (host: string, s: http.Server) => `http://${host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host}:${(s.address() as { port: number }).port}`;
      url = base(config.host, server);
      adminUrl = url;
      if (separateAdmin) {
        const adminHost = config.adminHost ?? config.host;
        const adminServer = await listenOn(app.adminListener, config.adminPort!, adminHost, config.http);
        cleanups.push(() => closeServer(adminServer));
        adminUrl = base(adminHost, adminServer);
      }
      if (!config.publicUrl) publicUrl = url;
    }
    // The report counters follow the events; a failed pass is logged and retried, never fatal.
    if (options.foldMetrics !== false) {
      const folder = new MetricsFolder({
        store,
        flows: () => dispatcher.currentFlows(),
        everyMs: config.metricsEvery,
        log,
        afterFold: async () => {
          for (const outcome of await decideExperiments(store, dispatcher.currentFlows(), Date.now())) {
            if (outcome.state !== 'running') log(`[experiments] ${outcome.experimentId} (flow ${outcome.flowId}): ${outcome.state}${outcome.winner ? `, winner ${outcome.winner}` : ''}`);
          }
        },
      });
      folder.start();
      cleanups.push(() => folder.stop());
    }
    // Let in-flight dispatches finish before the client closes: segment evaluations first, as they dispatch too.
    cleanups.push(() => dispatcher.idle());
    cleanups.push(() => segments.idle());

    // Events committed but never signalled (a crash, Temporal down) are delivered now, in order, and then by passes
    // that repeat while the server runs, backing off while Temporal is unreachable. Only processes that ingest do
    // this; a redelivery racing another server is harmless (arbiters dedupe by messageId).
    if (options.server !== false) {
      const recovered = await dispatcher.recoverPending();
      if (recovered > 0) log(`[microflows] delivered ${recovered} event(s) left undispatched by the previous run`);
      dispatcher.startRedispatching();
      cleanups.push(() => dispatcher.stopRedispatching());
    }

    return {
      config,
      store,
      client,
      dispatcher,
      segments,
      templates,
      worker,
      url,
      adminUrl,
      developmentAdminKey: devAdminKey,
      payloads,
      get policy() {
        return policy;
      },
      async reloadFlows() {
        const reloadedSegments = loadSegments(config.segmentsDir);
        // Read before anything changes: a bad policy file leaves the running flows and policy as they were.
        const reloadedPolicy = loadSendPolicy(config.flowsDir);
        const reloaded = await loadAndRegisterFlows(config, store);
        dispatcher.setFlows(reloaded);
        segments.setSegments(reloadedSegments);
        await segments.syncDefinitions();
        policy = reloadedPolicy;
        return reloaded;
      },
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
