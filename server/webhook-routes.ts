// The ESPs' event webhooks (SendGrid, Postmark): each delivery, open, click, bounce, spam report and unsubscribe they
// report becomes the same canonical track event the open pixel and click redirect record. Each provider proves who
// it is its own way (SendGrid signs, Postmark sends a Basic credential); the write key opens neither, since browser
// pages carry it. The customer comes from what the provider delivered to, and the answer never says whether an
// address belongs to a customer.
import express, { type Request, type RequestHandler, type Router } from 'express';
import { UnauthorizedError } from '../core/errors';
import {
  attributeEngagement,
  maskEmail,
  normalizePostmarkEvent,
  normalizeSendGridEvents,
  type EngagementEvent,
  type NormalizedWebhook,
  type RecipientLookups,
} from '../core/esp-webhooks';
import type { NewEvent } from '../core/event';
import { parseStrictJson } from '../core/strict-json';
import {
  POSTMARK_CREDENTIAL_VARIABLE,
  SENDGRID_KEY_VARIABLE,
  SENDGRID_SIGNATURE_HEADER,
  SENDGRID_TIMESTAMP_HEADER,
  basicCredentialChecker,
  checkSendGridHeaders,
  sendGridVerificationKey,
  verifySendGridSignature,
} from '../core/webhook-signatures';
import type { Store } from '../store/store';
import { dispatchRecorded, type EventDispatcher } from './dispatcher';
import { asyncHandler } from './http-errors';
import { bodyBytes, readBody } from './ingest-routes';
import type { IngestQueue } from './ingest-queue';
import { trackEvent } from './tracking-routes';

export interface WebhookDeps {
  store: Store;
  queue: IngestQueue;
  dispatcher: EventDispatcher;
  /** SendGrid's verification key (base64 DER or PEM); null: /webhooks/sendgrid answers 401 saying what to set. */
  sendgridVerificationKey: string | null;
  /** Postmark's webhook credential, `user:password`; null: /webhooks/postmark answers 401 saying what to set. */
  postmarkWebhookCredential: string | null;
  log: (message: string) => void;
  now: () => number;
}

/** ESPs batch many events per POST (SendGrid up to thousands; Postmark bounces may carry the message). */
const WEBHOOK_LIMIT_BYTES = 5 * 1024 * 1024;

/** Items named in one log line at most; the count says how many more. */
const LOGGED_ITEMS = 5;

function sample(items: string[]): string {
  const more = items.length > LOGGED_ITEMS ? ` and ${items.length - LOGGED_ITEMS} more` : '';
  return `${items.slice(0, LOGGED_ITEMS).join(', ')}${more}`;
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Middleware that refuses every request, for a provider this server has no credential for. */
function notConfigured(provider: string, variable: string): RequestHandler {
  return (_req, _res, next) => next(new UnauthorizedError(`${provider} webhooks are not configured on this server: set ${variable} (see the README, "Engagement tracking and ESP webhooks")`));
}

/**
 * The SendGrid check, in two halves: the headers before the body is read (a missing or stale signature costs no
 * upload), the signature over the raw bytes after.
 */
function sendgridAuth(keyText: string | null, now: () => number): { beforeBody: RequestHandler; afterBody: RequestHandler } {
  if (keyText === null) return { beforeBody: notConfigured('SendGrid', SENDGRID_KEY_VARIABLE), afterBody: (_req, _res, next) => next() };
  // Parsed once, at startup: a mistyped key stops the server with a ConfigError instead of refusing every webhook.
  const key = sendGridVerificationKey(keyText);
  const signed = (req: Request) => ({ signature: header(req.headers[SENDGRID_SIGNATURE_HEADER]), timestamp: header(req.headers[SENDGRID_TIMESTAMP_HEADER]) });
  return {
    beforeBody: guard((req) => checkSendGridHeaders(signed(req), now())),
    afterBody: guard((req) => verifySendGridSignature(key, { ...signed(req), body: bodyBytes(req) }, now())),
  };
}

/** Middleware that runs `check` and passes what it throws to the error handler. */
function guard(check: (req: Request) => void): RequestHandler {
  return (req, _res, next) => {
    try {
      check(req);
      next();
    } catch (err) {
      next(err);
    }
  };
}

function postmarkAuth(credential: string | null): RequestHandler {
  if (credential === null) return notConfigured('Postmark', POSTMARK_CREDENTIAL_VARIABLE);
  const check = basicCredentialChecker(credential);
  return guard((req) => check(req.headers.authorization));
}

export function webhookRoutes(deps: WebhookDeps): Router {
  const router = express.Router();
  const { store } = deps;

  const lookups: RecipientLookups = {
    sendByMessageId: (messageId) => store.sendRecipient({ messageId }),
    sendByDeliveryKey: (deliveryKey) => store.sendRecipient({ deliveryKey }),
    async customerEmail(id) {
      const customerId = await store.resolveCustomerId(id);
      const profile = await store.getProfile(customerId);
      return profile && { customerId, email: profile.email };
    },
    customerIdByEmail: (email) => store.customerIdByEmail(email),
  };

  const webhook = (provider: 'sendgrid' | 'postmark', normalize: (body: unknown) => NormalizedWebhook) =>
    asyncHandler(async (req, res) => {
      const { events, ignored } = normalize(parseStrictJson(bodyBytes(req), { maxDepth: 64 }));
      const receivedAt = deps.now();
      const accepted: NewEvent[] = [];
      const unknown: string[] = [];
      const distrusted: string[] = [];
      for (const event of events) {
        const attribution = await attributeEngagement(event, lookups);
        if (attribution.distrusted.length > 0) distrusted.push(`${maskEmail(event.email)}: ${attribution.distrusted.join('; ')}`);
        if (attribution.customerId === null) {
          unknown.push(maskEmail(event.email));
          continue;
        }
        accepted.push(engagementEvent({ ...event, properties: attribution.properties }, attribution.customerId, provider, receivedAt));
      }
      // One line per request, however large the batch; addresses masked.
      if (unknown.length > 0) deps.log(`[webhooks] ${provider}: ${unknown.length} event(s) for recipients no customer has, not recorded: ${sample(unknown)}`);
      // Ids that name someone other than the recipient: a misconfigured sender, or a forgery attempt.
      if (distrusted.length > 0) deps.log(`[webhooks] ${provider}: ${distrusted.length} event(s) carried ids that do not match their recipient, ignored: ${sample(distrusted)}`);
      const results = await deps.queue.submit(accepted);
      // The same answer whether or not the recipients are customers, and whether or not the events were new:
      // `ignored` depends on the body alone (events that are not engagement, or unusable), never on the store.
      res.status(200).json({ success: true, received: events.length + ignored.length, ignored });
      dispatchRecorded(deps.dispatcher, deps.log, results);
    });

  const sendgrid = sendgridAuth(deps.sendgridVerificationKey, deps.now);
  router.post('/webhooks/sendgrid', sendgrid.beforeBody, readBody(WEBHOOK_LIMIT_BYTES, 'webhook'), sendgrid.afterBody, webhook('sendgrid', normalizeSendGridEvents));
  router.post('/webhooks/postmark', postmarkAuth(deps.postmarkWebhookCredential), readBody(WEBHOOK_LIMIT_BYTES, 'webhook'), webhook('postmark', normalizePostmarkEvent));
  return router;
}

function engagementEvent(event: EngagementEvent, customerId: string, provider: string, receivedAt: number): NewEvent {
  return trackEvent({
    messageId: event.messageId,
    customerId,
    name: event.name,
    properties: { ...event.properties, email: event.email },
    context: { source: `${provider}-webhook` },
    timestamp: event.timestamp,
    receivedAt,
  });
}
