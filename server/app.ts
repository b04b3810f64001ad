// The HTTP surface: Segment-compatible ingest (/v1/*), engagement tracking, one-click unsubscribe and ESP webhooks
// (/t/*, /u/*, /webhooks/*), the read-only admin API (/api/*) and the catalog API (/api/catalog/*). Only wiring
// lives here: validation is core/, persistence the store, Temporal the dispatcher.
import { randomBytes } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import express, { type ErrorRequestHandler, type NextFunction, type Request, type Response } from 'express';
import proxyaddr from 'proxy-addr';
import { behaviorView } from '../core/behavior';
import type { Config } from '../core/config';
import type { Store } from '../store/store';
import type { EventDispatcher } from './dispatcher';
import type { CatalogReader } from '../activities/catalog';
import type { TemplateLibrary } from '../activities/templates';
import { catalogRoutes } from './catalog-routes';
import { segmentRoutes } from './segment-routes';
import type { SegmentEngine } from '../activities/segment-engine';
import type { FlowDefinition } from '../core/flow-types';
import { templateRoutes } from './template-routes';
import { BadRequestError, NotFoundError, asyncHandler, errorAnswer } from './http-errors';
import { KeyRing, requireAdminKey } from './auth';
import { allowedHostsOf, checkHost, requireAllowedHost, securityHeaders } from './http-guards';
import { IngestQueue } from './ingest-queue';
import { truncateEventIp } from '../core/ip-truncation';
import { keyRoutes } from './key-routes';
import { consentRoutes } from './consent-routes';
import { codecRoutes } from './codec-routes';
import type { EncryptingPayloadCodec } from '../client/payload-codec';
import { suppressionRoutes } from './suppression-routes';
import { auditRoutes } from './audit-routes';
import { reportRoutes } from './report-routes';
import { codeRoutes } from './code-routes';
import { customerRoutes } from './customer-routes';
import type { ErasureWiring, WorkflowTerminator } from './customer-erasure';
import { limiter, type Limiter } from './rate-limits';
import { ingestHandler } from './ingest-routes';
import { trackingRoutes } from './tracking-routes';
import { countdownImageUrl } from '../core/countdown';
import { countdownRoutes, type CountdownRouteDeps } from './countdown-routes';
import { preferenceRoutes } from './preference-routes';
import type { Brand } from '../core/brand';
import { linkDomainOf } from '../core/link-policy';
import { webhookRoutes } from './webhook-routes';

export { EVENT_LIMIT_BYTES, BATCH_LIMIT_BYTES } from '../core/segment-spec';

/** Most events one ingest transaction writes. */
const MAX_BATCH_EVENTS = 2000;
/**
 * Under sustained load, how long a request waits for others to share its transaction. At 2,000 track calls/s, 2 ms
 * took transactions from ~3 to ~10 events and the p99 from ~600 to ~50–160 ms on 2 cores; 4 ms capped throughput at
 * what 16 keep-alive connections can have in flight (bench/README.md, "ingest").
 */
const INGEST_LINGER_MS = 2;
/** Events shown by GET /api/profiles/:id. */
const RECENT_EVENTS = 20;

export type AppConfig = Pick<Config, 'writeKey'> &
  Partial<
    Pick<
      Config,
      | 'ingestMaxPending'
      | 'adminKey'
      | 'allowedHosts'
      | 'host'
      | 'adminHost'
      | 'publicUrl'
      | 'shopUrl'
      | 'clientMaxSkewMs'
      | 'rateLimitPerKey'
      | 'rateLimitPerIp'
      | 'trustProxy'
      | 'adminPort'
      | 'sendgridVerificationKey'
      | 'postmarkWebhookCredential'
      | 'linkDomains'
      | 'rateLimitPerToken'
      | 'ipTruncation'
    >
  > & { signingSecret?: string | null };

export interface AppDeps {
  store: Store;
  /**
   * `signingSecret` signs click, open and unsubscribe links (a random one per process when absent, so links die with
   * it). `writeKey` is one server source key and `adminKey` one admin key, besides the keys in the store.
   */
  config: AppConfig;
  /** The keys that open ingest and /api; by default the store's and the config's. */
  keys?: KeyRing;
  /** Ingest's limiters; by default `rateLimitPerKey` calls per second per source key, `rateLimitPerIp` requests per second per client IP (client keys). */
  ingestLimits?: { perKey: Limiter | null; perIp: Limiter | null };
  dispatcher: EventDispatcher;
  /** Templates to preview (GET /api/templates/:name/preview); without them those routes are absent. */
  templates?: TemplateLibrary;
  catalog?: CatalogReader;
  /** Segment membership: evaluated for each customer an ingest commit touched; also serves /api/segments. */
  segments?: SegmentEngine;
  /** The flows currently loaded, for the segment report's "used by". */
  flows?: () => FlowDefinition[];
  /** Segments under this size are flagged in the report (default 100). */
  segmentMinSize?: number;
  /** Where unexpected errors and dispatch failures are reported; stderr by default. */
  log?: (message: string) => void;
  /** Arrival clock for events; tests pin it. */
  now?: () => number;
  /**
   * The Temporal this server hands events to, for /api/health: `check` resolves when its frontend answers within
   * `timeoutMs`. Absent (an app that talks to no Temporal), health reports the store alone.
   */
  temporal?: { address: string | null; check(timeoutMs: number): Promise<void> };
  /** The sender's brand (brand.yaml): its name and topic labels on the preference center; absent: topic ids humanized. */
  brand?: Brand | null;
  /**
   * The countdown image (GET /c/countdown/:token.gif): `style`, the brand's colours (default core/countdown
   * DEFAULT_COUNTDOWN_STYLE); `gifs`, the frame cache (tests pass theirs).
   */
  countdown?: Pick<CountdownRouteDeps, 'style' | 'gifs'>;
  /** Terminates an erased customer's workflows (DELETE /api/customers/:id); absent, that route answers 503. */
  workflows?: WorkflowTerminator;
  /** The arbiter's workflow id for a customer (default core/arbiter-state customerWorkflowId). */
  arbiterWorkflowId?: ErasureWiring['arbiterWorkflowId'];
  /** The customer's data key subject, whose key an erasure deletes (the payload codec's). */
  dataKeySubject?: ErasureWiring['dataKeySubject'];
  forgetDataKey?: ErasureWiring['forgetDataKey'];
  /**
   * Encrypted Temporal payloads: the codec behind POST /codec/decode and /codec/encode (admin keys; CORS for
   * `allowedOrigins`, the Web UI's). Absent: no codec endpoint.
   */
  payloads?: { codec: EncryptingPayloadCodec; allowedOrigins: readonly string[] };
}

/** How long /api/health waits for each of the store and Temporal before it reports that one down. */
export const HEALTH_PROBE_TIMEOUT_MS = 2_000;

type Probe<T> = { ok: true; value: T } | { ok: false; error: string };

/** `work`'s outcome, or a failure once `timeoutMs` have passed without one (the work itself is left to end on its own). */
async function probe<T>(work: () => Promise<T>, timeoutMs: number): Promise<Probe<T>> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Probe<T>>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, error: `no answer within ${timeoutMs} ms` }), timeoutMs);
  });
  try {
    return await Promise.race([
      work().then(
        (value): Probe<T> => ({ ok: true, value }),
        (err: unknown): Probe<T> => ({ ok: false, error: (err as Error)?.message ?? String(err) }),
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function stringQuery(req: Request, name: string): string | undefined {
  const value = req.query[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new BadRequestError('give it once, as a single string', name);
  return value;
}

/**
 * A node:http request listener for every route (one port), that can also listen on its own as an express app can;
 * `publicListener` and `adminListener` split it for two ports (MICROFLOWS_ADMIN_PORT).
 */
export interface App {
  (req: IncomingMessage, res: ServerResponse): void;
  listen(port: number, host: string, onListening: () => void): http.Server;
  /** Ingest, tracking, unsubscribe, webhooks and /api/health: what the world must reach. */
  publicListener: (req: IncomingMessage, res: ServerResponse) => void;
  /** /api (admin key required) and /api/health. */
  adminListener: (req: IncomingMessage, res: ServerResponse) => void;
  keys: KeyRing;
}

/** Which proxies to believe about the client (express's `trust proxy` values: a hop count, or addresses and subnets). */
function proxyTrust(trust: string): (address: string, hop: number) => boolean {
  if (/^\d+$/.test(trust)) return (_address, hop) => hop < Number(trust);
  return proxyaddr.compile(trust.split(',').map((t) => t.trim()));
}

/** The client's address through the proxies `trust` names; the socket's peer when none is trusted. */
export function clientIpResolver(trust: string | null | undefined): (req: IncomingMessage) => string {
  if (!trust) return (req) => req.socket.remoteAddress ?? '';
  const trusted = proxyTrust(trust);
  return (req) => proxyaddr(req, trusted);
}

/**
 * After a commit, the customers whose events were stored are evaluated for their segments (off the request path),
 * then the events go to the flows' dispatcher as before.
 */
function withSegmentUpdates(dispatcher: EventDispatcher, segments: SegmentEngine | undefined): EventDispatcher {
  if (!segments) return dispatcher;
  return {
    needsDispatch: (event) => dispatcher.needsDispatch(event),
    dispatch(result) {
      if (!result.duplicate) segments.enqueue([result.event.customerId]);
      dispatcher.dispatch(result);
    },
  };
}

export function createApp(deps: AppDeps): App {
  const { store, config } = deps;
  const dispatcher = withSegmentUpdates(deps.dispatcher, deps.segments);
  const log = deps.log ?? ((message: string) => console.error(message));
  const now = deps.now ?? Date.now;
  const keys = deps.keys ?? new KeyRing(store, { writeKey: config.writeKey, adminKey: config.adminKey ?? null });
  const allowedHosts = allowedHostsOf(config);
  const clientIp = clientIpResolver(config.trustProxy);

  const queue = new IngestQueue(store, (event) => dispatcher.needsDispatch(event), {
    maxPendingEvents: config.ingestMaxPending ?? 20_000,
    maxBatchEvents: MAX_BATCH_EVENTS,
    lingerMs: INGEST_LINGER_MS,
    // Every route's events go through the queue: the client's context.ip, the server's on clicks, opens and unsubscribes.
    ...((config.ipTruncation ?? true) ? { prepare: truncateEventIp } : {}),
  });
  const ingest = ingestHandler({
    keys,
    queue,
    dispatcher,
    log,
    now,
    clientMaxSkewMs: config.clientMaxSkewMs ?? 3_600_000,
    limits: deps.ingestLimits ?? {
      perKey: config.rateLimitPerKey ? limiter(config.rateLimitPerKey, 1) : null,
      perIp: config.rateLimitPerIp ? limiter(config.rateLimitPerIp, 1) : null,
    },
    clientIp,
    checkHost: (req, path) => checkHost(req, path, allowedHosts),
  });

  // What the world reaches: tracking, unsubscribe, preferences, webhooks (ingest answers ahead of express).
  // One secret for every link kind: without a configured one, links die with the process.
  const signingSecret = config.signingSecret ?? randomBytes(32).toString('hex');
  const publicRoutes = express.Router();
  publicRoutes.use(
    trackingRoutes({
      store,
      queue,
      dispatcher,
      writeKey: config.writeKey,
      signingSecret,
      log,
      now,
      shopUrl: config.shopUrl ?? 'https://shop.example',
      // Default: the shop URL's host, as core/config has it.
      linkDomains: config.linkDomains ?? [linkDomainOf(config.shopUrl ?? 'https://shop.example') ?? 'shop.example'],
      rateLimitPerToken: config.rateLimitPerToken ?? 30,
    }),
  );
  // The timer is drawn in the brand's colours: its digits in the primary colour on the email's card, labels muted.
  const brandStyle = deps.brand ? { style: { background: deps.brand.colors.surface, text: deps.brand.colors.primary, muted: deps.brand.colors.muted } } : {};
  publicRoutes.use(countdownRoutes({ signingSecret, now, ...brandStyle, ...deps.countdown }));
  publicRoutes.use(
    preferenceRoutes({
      store,
      queue,
      dispatcher,
      signingSecret,
      flows: deps.flows ?? (() => []),
      brand: deps.brand ?? null,
      log,
      now,
      rateLimitPerToken: config.rateLimitPerToken ?? 30,
    }),
  );
  publicRoutes.use(
    webhookRoutes({
      store,
      queue,
      dispatcher,
      sendgridVerificationKey: config.sendgridVerificationKey ?? null,
      postmarkWebhookCredential: config.postmarkWebhookCredential ?? null,
      log,
      now,
    }),
  );

  // /api/health stays open on both surfaces: probes carry no key.
  const healthRoutes = express.Router();
  // 503 when the store or Temporal does not answer. Ingest goes on meanwhile (events are stored and delivered to
  // Temporal once it answers), which `undispatched` shows: how many events wait, and for how long the oldest has.
  healthRoutes.get(
    '/api/health',
    asyncHandler(async (_req, res) => {
      const [owed, temporal] = await Promise.all([
        probe(() => store.undispatchedSummary(), HEALTH_PROBE_TIMEOUT_MS),
        deps.temporal ? probe(() => deps.temporal!.check(HEALTH_PROBE_TIMEOUT_MS), HEALTH_PROBE_TIMEOUT_MS) : undefined,
      ]);
      const at = now();
      const ok = owed.ok && (temporal?.ok ?? true);
      res.status(ok ? 200 : 503).json({
        status: ok ? 'ok' : 'unavailable',
        store: owed.ok ? { ok: true, backend: store.dialect } : { ok: false, backend: store.dialect, error: owed.error },
        ...(deps.temporal && temporal ? { temporal: temporal.ok ? { ok: true, address: deps.temporal.address } : { ok: false, address: deps.temporal.address, error: temporal.error } } : {}),
        undispatched: owed.ok
          ? { count: owed.value.count, oldestReceivedAt: owed.value.oldestReceivedAt, oldestAgeMs: owed.value.oldestReceivedAt === null ? null : Math.max(0, at - owed.value.oldestReceivedAt) }
          : null,
      });
    }),
  );

  // The admin API: every route needs an admin key with the scope its method needs.
  const adminRoutes = express.Router();
  adminRoutes.use('/api', requireAdminKey(keys));
  const app = adminRoutes;
  app.get(
    '/api/profiles/:id',
    asyncHandler(async (req, res) => {
      const requested = req.params.id ?? '';
      const customerId = await store.resolveCustomerId(requested);
      const profile = await store.getProfile(customerId);
      if (!profile) throw new NotFoundError(`no profile for ${requested}: no event has named this userId or anonymousId`);
      const at = now();
      const computed = behaviorView(profile.computed, at);
      res.json({
        customerId,
        aliases: await store.aliasesOf(customerId),
        email: profile.email,
        timezone: profile.timezone,
        traits: profile.traits,
        computed,
        tags: profile.tags,
        behavioralTags: computed.behavioral_tags,
        consent: profile.consent,
        updatedAt: profile.updatedAt,
        segments: await store.segmentsOf(customerId),
        asOf: at,
        recentEvents: (await store.recentEvents(customerId, RECENT_EVENTS)).map(({ dispatched: _d, ...event }) => event),
      });
    }),
  );

  app.get(
    '/api/outbox',
    asyncHandler(async (req, res) => {
      res.json({ messages: await store.listOutbox({ to: stringQuery(req, 'to') }) });
    }),
  );

  app.get(
    '/api/customers/:id/decisions',
    asyncHandler(async (req, res) => {
      res.json({ decisions: await store.decisionsOf(req.params.id ?? '') });
    }),
  );

  app.get(
    '/api/customers/:id/runs',
    asyncHandler(async (req, res) => {
      res.json({ runs: await store.flowEntriesOf(req.params.id ?? '') });
    }),
  );

  app.use(catalogRoutes({ store }));
  if (deps.segments) app.use(segmentRoutes({ store, segments: deps.segments, flows: deps.flows ?? (() => []), minSize: deps.segmentMinSize ?? 100 }));
  if (deps.templates) {
    const publicUrl = config.publicUrl;
    app.use(
      templateRoutes({
        templates: deps.templates,
        store,
        catalog: deps.catalog ?? null,
        now: Date.now,
        ...(config.linkDomains ? { linkDomains: config.linkDomains } : {}),
        // A preview shows the countdown image a send would, from the public URL (the sentence alone without one).
        countdownUrl: publicUrl ? (untilMs) => countdownImageUrl(publicUrl, signingSecret, untilMs) : null,
      }),
    );
  }

  adminRoutes.use(keyRoutes({ store, now }));
  adminRoutes.use(consentRoutes({ store }));
  if (deps.payloads) adminRoutes.use(codecRoutes({ codec: deps.payloads.codec, allowedOrigins: deps.payloads.allowedOrigins, keys, signingSecret, now, log }));
  adminRoutes.use(suppressionRoutes({ store, now }));
  adminRoutes.use(auditRoutes({ store, now }));
  adminRoutes.use(reportRoutes({ store, now }));
  adminRoutes.use(codeRoutes({ store }));
  adminRoutes.use(
    customerRoutes({
      store,
      now,
      ...(deps.workflows ? { workflows: deps.workflows } : {}),
      ...(deps.arbiterWorkflowId ? { arbiterWorkflowId: deps.arbiterWorkflowId } : {}),
      ...(deps.dataKeySubject ? { dataKeySubject: deps.dataKeySubject } : {}),
      ...(deps.forgetDataKey ? { forgetDataKey: deps.forgetDataKey } : {}),
    }),
  );

  const handleErrors: ErrorRequestHandler = (err: unknown, _req, res, _next) => {
    if (res.headersSent) {
      log(`[http] error after the response was sent: ${(err as Error)?.stack ?? String(err)}`);
      return;
    }
    const answer = errorAnswer(err, log);
    res.status(answer.status).set(answer.headers).json(answer.body);
  };

  /** An express app serving `surfaces`, behind the Host check and helmet's headers. */
  const surfaceApp = (surfaces: { public: boolean; admin: boolean }) => {
    const app = express();
    app.disable('x-powered-by');
    // req.ip (tracking events) then agrees with the ingest path's client IP.
    if (config.trustProxy) app.set('trust proxy', proxyTrust(config.trustProxy));
    app.use(requireAllowedHost(allowedHosts));
    const publicHeaders = securityHeaders('public');
    const adminHeaders = securityHeaders('admin');
    app.use((req, res, next) => (req.path.startsWith('/api/') ? adminHeaders : publicHeaders)(req, res, next));
    app.use(healthRoutes);
    if (surfaces.public) app.use(publicRoutes);
    if (surfaces.admin) app.use(adminRoutes);
    app.use((req: Request, _res: Response, next: NextFunction) => {
      const elsewhere = !surfaces.admin && req.path.startsWith('/api/') ? ': the admin API answers on MICROFLOWS_ADMIN_PORT' : !surfaces.public && !req.path.startsWith('/api/') ? ': this is the admin port; ingest, tracking and webhooks answer on PORT' : '';
      next(new NotFoundError(`no route for ${req.method} ${req.path}${elsewhere}`));
    });
    app.use(handleErrors);
    return app;
  };

  const everything = surfaceApp({ public: true, admin: true });
  const publicOnly = surfaceApp({ public: true, admin: false });
  const adminOnly = surfaceApp({ public: false, admin: true });
  const handler = ((req: IncomingMessage, res: ServerResponse) => {
    if (!ingest(req, res)) everything(req, res);
  }) as App;
  handler.publicListener = (req, res) => {
    if (!ingest(req, res)) publicOnly(req, res);
  };
  handler.adminListener = (req, res) => adminOnly(req, res);
  handler.keys = keys;
  handler.listen = (port, host, onListening) => http.createServer(handler).listen(port, host, onListening);
  return handler;
}
