// Email engagement into canonical events: the open pixel and the signed click redirect (with UTM tags) and the RFC
// 8058 one-click unsubscribe link (the ESP webhooks are in webhook-routes.ts). Each becomes an `Email Opened`,
// `Email Link Clicked`, `Unsubscribed` track event written like any other, so engagement from any source is
// counted the same way. Tokens expire (an expired click lands on the shop's home page and counts nothing; an expired
// unsubscribe still unsubscribes), each token has a rate limit, and a token's repeated open or click within
// ten minutes counts once.
import { createHash, randomUUID } from 'node:crypto';
import express, { type Response, type Router } from 'express';
import type { NewEvent } from '../core/event';
import { isMicroflowsError, type RateLimitedError } from '../core/errors';
import { checkDataLink, normalizeLinkDomains } from '../core/link-policy';
import { verifyClickToken, verifyOpenToken, verifyUnsubscribeToken, withUtm, type ClickClaims, type UnsubscribeClaims, type VerifiedToken } from '../core/tracking';
import type { RecordEventResult, Store } from '../store/store';
import type { EventDispatcher } from './dispatcher';
import { asyncHandler } from './http-errors';
import { dispatchRecorded } from './dispatcher';
import type { IngestQueue } from './ingest-queue';
import { firstIn, limiter } from './rate-limits';
import { confirmUnsubscribePage, invalidLinkPage, sendPage, tooManyRequestsPage, unsubscribedPage } from './unsubscribe-pages';

export interface TrackingDeps {
  store: Store;
  queue: IngestQueue;
  dispatcher: EventDispatcher;
  signingSecret: string;
  writeKey: string;
  log: (message: string) => void;
  now: () => number;
  /** The shop's home page: where an expired click lands, and a click whose link from data is off `linkDomains`. */
  shopUrl: string;
  /** Where a link from data may still redirect (core/link-policy), checked again at the click: they may have changed. */
  linkDomains: readonly string[];
  /** Hits per minute one click, open or unsubscribe token may make before it is answered 429; null: no limit. */
  rateLimitPerToken: number | null;
}

/** A token's repeated open or click within this window counts once (mail clients and scanners fetch links again). */
export const REPEAT_WINDOW_SECONDS = 600;

/** The limiters' key for a token: a digest, so the limiters hold 22 characters per token whatever its length. */
function tokenKey(kind: string, token: string): string {
  return `${kind}:${createHash('sha256').update(token).digest('base64url').slice(0, 22)}`;
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
function verifyForPage(res: Response, secret: string, token: string, now: number): VerifiedToken<UnsubscribeClaims> | undefined {
  try {
    return verifyUnsubscribeToken(secret, token, now);
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
  const linkDomains = normalizeLinkDomains(deps.linkDomains);
  const perToken = deps.rateLimitPerToken ? limiter(deps.rateLimitPerToken, 60) : null;
  const firstTime = firstIn(REPEAT_WINDOW_SECONDS);

  const record = async (events: NewEvent[]): Promise<RecordEventResult[]> => {
    const results = await deps.queue.submit(events);
    dispatchRecorded(deps.dispatcher, deps.log, results);
    return results;
  };

  /** Where a verified click goes: its link, unless it came from data and its host is no longer on the link domains. */
  const destination = (claims: ClickClaims): string | null => (claims.literal || checkDataLink(claims.url, linkDomains).ok ? claims.url : null);

  router.get(
    '/t/c/:token',
    asyncHandler(async (req, res) => {
      const token = req.params.token ?? '';
      // Verified before anything else: a forged or altered link gets a 400 and never a redirect.
      const { claims, expired } = verifyClickToken(deps.signingSecret, token, deps.now());
      await perToken?.take(tokenKey('t', token), 1, 'this link was followed too often');
      // An expired link still takes the reader somewhere useful, and counts nothing.
      if (expired) return res.redirect(302, deps.shopUrl);
      const target = destination(claims);
      if (await firstTime(tokenKey('c', token))) {
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
      }
      if (target === null) deps.log(`[tracking] a click on ${claims.url} went to the shop's home page: the link came from data and its host is not on the link domains`);
      res.redirect(302, target === null ? deps.shopUrl : withUtm(target, { flowId: claims.flowId, stepId: claims.stepId, variant: claims.variant }));
    }),
  );

  router.get(
    '/t/o/:token',
    asyncHandler(async (req, res) => {
      const token = (req.params.token ?? '').replace(/\.gif$/, '');
      const { claims, expired } = verifyOpenToken(deps.signingSecret, token, deps.now());
      await perToken?.take(tokenKey('t', token), 1, 'this pixel was fetched too often');
      if (!expired && (await firstTime(tokenKey('o', token)))) {
        const at = deps.now();
        const properties: Record<string, unknown> = { delivery_key: claims.deliveryKey, flow_id: claims.flowId, step_id: claims.stepId };
        if (claims.variant !== undefined) properties.variant = claims.variant;
        const context = { userAgent: req.headers['user-agent'] ?? null, ip: req.ip ?? null, source: 'open-pixel' };
        try {
          await record([trackEvent({ messageId: randomUUID(), customerId: claims.customerId, name: 'Email Opened', properties, context, timestamp: at, receivedAt: at })]);
        } catch (err) {
          deps.log(`[tracking] open by ${claims.customerId} not recorded: ${(err as Error).message}`);
        }
      }
      res.set({ 'Content-Type': 'image/gif', 'Cache-Control': 'no-store, max-age=0' }).status(200).send(PIXEL);
    }),
  );

  /** Takes one hit of the token's allowance; false after answering the 429 page (a person may be looking at it). */
  const withinLimit = async (res: Response, token: string): Promise<boolean> => {
    try {
      await perToken?.take(tokenKey('u', token), 1, 'this unsubscribe link was used too often');
      return true;
    } catch (err) {
      if (!isMicroflowsError(err) || err.code !== 'rate_limited') throw err;
      res.set('Retry-After', String((err as RateLimitedError).retryAfterSeconds));
      sendPage(res, 429, tooManyRequestsPage());
      return false;
    }
  };

  // RFC 8058 one-click unsubscribe. The GET (the visible link) only shows a page with a button: link scanners and
  // previews follow links. The POST (a mailbox provider's one-click, body `List-Unsubscribe=One-Click`, or that
  // button) opts the customer out before it answers; the body is not read, as providers vary in what they send.
  // An expired unsubscribe link works like any other: the law wants it to keep working.
  router.get(
    '/u/:token',
    asyncHandler(async (req, res) => {
      const token = req.params.token ?? '';
      if (!verifyForPage(res, deps.signingSecret, token, deps.now())) return;
      if (!(await withinLimit(res, token))) return;
      sendPage(res, 200, confirmUnsubscribePage());
    }),
  );

  router.post(
    '/u/:token',
    asyncHandler(async (req, res) => {
      const token = req.params.token ?? '';
      // Verified before anything else: a forged or altered link gets a 400 and records nothing.
      const verified = verifyForPage(res, deps.signingSecret, token, deps.now());
      if (!verified) return;
      if (!(await withinLimit(res, token))) return;
      const { claims } = verified;
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
