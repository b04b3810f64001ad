// Email engagement into canonical events: the open pixel and the signed click redirect (with UTM tags) and the RFC
// 8058 one-click unsubscribe link (the ESP webhooks are in webhook-routes.ts). Each becomes an `Email Opened`,
// `Email Link Clicked`, `Unsubscribed` track event written like any other, so engagement from any source is
// counted the same way.
import { createHash, randomUUID } from 'node:crypto';
import express, { type Response, type Router } from 'express';
import type { NewEvent } from '../core/event';
import { isMicroflowsError } from '../core/errors';
import { verifyClickToken, verifyOpenToken, verifyUnsubscribeToken, withUtm, type UnsubscribeClaims } from '../core/tracking';
import type { RecordEventResult, Store } from '../store/store';
import type { EventDispatcher } from './dispatcher';
import { asyncHandler } from './http-errors';
import { dispatchRecorded } from './dispatcher';
import type { IngestQueue } from './ingest-queue';
import { confirmUnsubscribePage, invalidLinkPage, sendPage, unsubscribedPage } from './unsubscribe-pages';

export interface TrackingDeps {
  store: Store;
  queue: IngestQueue;
  dispatcher: EventDispatcher;
  signingSecret: string;
  writeKey: string;
  log: (message: string) => void;
  now: () => number;
}

/** The smallest transparent GIF (1x1). */
const PIXEL = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64');

/**
 * One token, one event a day: a provider retrying its one-click POST, or a reader pressing the button twice, is the
 * same unsubscribe, so the store deduplicates it by this messageId. The day is part of it so that a customer who
 * resubscribed and later uses the same email's link again is unsubscribed again.
 */
export function unsubscribeMessageId(token: string, at: number): string {
  return `unsubscribe:${createHash('sha256').update(token).digest('hex').slice(0, 32)}:${new Date(at).toISOString().slice(0, 10)}`;
}

/** The link's claims, or undefined after answering a 400 page that says why (a link is opened by a person). */
function verifyForPage(res: Response, secret: string, token: string): UnsubscribeClaims | undefined {
  try {
    return verifyUnsubscribeToken(secret, token);
  } catch (err) {
    if (!isMicroflowsError(err) || err.status !== 400) throw err;
    sendPage(res, 400, invalidLinkPage(err.message));
    return undefined;
  }
}

export function trackEvent(fields: { messageId: string; customerId: string; name: string; properties: Record<string, unknown>; context: Record<string, unknown>; timestamp: number; receivedAt: number }): NewEvent {
  return { ...fields, type: 'track', userId: fields.customerId, anonymousId: null, traits: {} };
}

export function trackingRoutes(deps: TrackingDeps): Router {
  const router = express.Router();

  const record = async (events: NewEvent[]): Promise<RecordEventResult[]> => {
    const results = await deps.queue.submit(events);
    dispatchRecorded(deps.dispatcher, deps.log, results);
    return results;
  };

  router.get(
    '/t/c/:token',
    asyncHandler(async (req, res) => {
      // Verified before anything else: a forged or altered link gets a 400 and never a redirect.
      const claims = verifyClickToken(deps.signingSecret, req.params.token ?? '');
      const at = deps.now();
      const properties: Record<string, unknown> = { url: claims.url, delivery_key: claims.deliveryKey, flow_id: claims.flowId, step_id: claims.stepId };
      if (claims.variant !== undefined) properties.variant = claims.variant;
      const context = { userAgent: req.headers['user-agent'] ?? null, ip: req.ip ?? null, source: 'click-redirect' };
      try {
        await record([trackEvent({ messageId: randomUUID(), customerId: claims.customerId, name: 'Email Link Clicked', properties, context, timestamp: at, receivedAt: at })]);
      } catch (err) {
        // The reader still gets where they were going; the lost click is logged.
        deps.log(`[tracking] click by ${claims.customerId} not recorded: ${(err as Error).message}`);
      }
      res.redirect(302, withUtm(claims.url, { flowId: claims.flowId, stepId: claims.stepId, variant: claims.variant }));
    }),
  );

  router.get(
    '/t/o/:token',
    asyncHandler(async (req, res) => {
      const claims = verifyOpenToken(deps.signingSecret, (req.params.token ?? '').replace(/\.gif$/, ''));
      const at = deps.now();
      const properties: Record<string, unknown> = { delivery_key: claims.deliveryKey, flow_id: claims.flowId, step_id: claims.stepId };
      if (claims.variant !== undefined) properties.variant = claims.variant;
      const context = { userAgent: req.headers['user-agent'] ?? null, ip: req.ip ?? null, source: 'open-pixel' };
      try {
        await record([trackEvent({ messageId: randomUUID(), customerId: claims.customerId, name: 'Email Opened', properties, context, timestamp: at, receivedAt: at })]);
      } catch (err) {
        deps.log(`[tracking] open by ${claims.customerId} not recorded: ${(err as Error).message}`);
      }
      res.set({ 'Content-Type': 'image/gif', 'Cache-Control': 'no-store, max-age=0' }).status(200).send(PIXEL);
    }),
  );

  // RFC 8058 one-click unsubscribe. The GET (the visible link) only shows a page with a button: link scanners and
  // previews follow links. The POST (a mailbox provider's one-click, body `List-Unsubscribe=One-Click`, or that
  // button) opts the customer out before it answers; the body is not read, as providers vary in what they send.
  router.get('/u/:token', (req, res) => {
    if (!verifyForPage(res, deps.signingSecret, req.params.token ?? '')) return;
    sendPage(res, 200, confirmUnsubscribePage());
  });

  router.post(
    '/u/:token',
    asyncHandler(async (req, res) => {
      const token = req.params.token ?? '';
      // Verified before anything else: a forged or altered link gets a 400 and records nothing.
      const claims = verifyForPage(res, deps.signingSecret, token);
      if (!claims) return;
      const at = deps.now();
      // The store folds `Unsubscribed` into consent.email_marketing = false in the event's own transaction, so
      // every marketing send that starts after this answer finds the consent withdrawn. Unlike a click, a failure
      // here is not swallowed: the customer must not be told they are unsubscribed when they are not.
      await record([
        trackEvent({
          messageId: unsubscribeMessageId(token, at),
          customerId: claims.customerId,
          name: 'Unsubscribed',
          properties: { delivery_key: claims.deliveryKey, flow_id: claims.flowId, source: 'one-click' },
          context: { userAgent: req.headers['user-agent'] ?? null, ip: req.ip ?? null, source: 'unsubscribe-link' },
          timestamp: at,
          receivedAt: at,
        }),
      ]);
      sendPage(res, 200, unsubscribedPage());
    }),
  );

  return router;
}
