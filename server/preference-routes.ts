// The preference center on the public surface: GET /preferences/:token shows the topics of the loaded flows with the
// customer's choices, POST saves them (or leaves everything) by recording a `Preferences Updated` event, which the
// store folds into the profile's consent map in the event's own transaction (core/profile), so every send that
// starts after the answer sees the change. The token is an encrypted, expiring link token (core/tracking); a forged,
// altered or expired one gets a page that says so and changes nothing. Each token has a rate limit.
import { createHash, randomUUID } from 'node:crypto';
import express, { type Request, type Response, type Router } from 'express';
import type { Brand } from '../core/brand';
import { isMicroflowsError, type RateLimitedError } from '../core/errors';
import type { FlowDefinition } from '../core/flow-types';
import { preferencesChange, topicChoices, type PreferencesForm } from '../core/preferences';
import { PREFERENCES_UPDATED } from '../core/topic-consent';
import { verifyPreferencesToken, type PreferencesClaims } from '../core/tracking';
import type { Store } from '../store/store';
import { dispatchRecorded, type EventDispatcher } from './dispatcher';
import { asyncHandler } from './http-errors';
import type { IngestQueue } from './ingest-queue';
import {
  expiredPreferencesLinkPage,
  invalidPreferencesLinkPage,
  preferencesPage,
  preferencesTooManyRequestsPage,
  unknownCustomerPage,
  unreadableFormPage,
  type PreferencesView,
} from './preference-pages';
import { limiter } from './rate-limits';
import { trackEvent } from './tracking-routes';
import { sendPage } from './unsubscribe-pages';

export interface PreferenceDeps {
  store: Store;
  queue: IngestQueue;
  dispatcher: EventDispatcher;
  signingSecret: string;
  /** The flows currently loaded: their topics are what the page offers. */
  flows: () => readonly FlowDefinition[];
  /** Labels for the topics and the sender's name; null: topic ids humanized. */
  brand: Brand | null;
  log: (message: string) => void;
  now: () => number;
  /** Hits per minute one preferences token may make before it is answered 429; null: no limit. */
  rateLimitPerToken: number | null;
}

/** The limiter's key for a token: a digest, so the limiter holds 22 characters per token whatever its length. */
function tokenKey(token: string): string {
  return `p:${createHash('sha256').update(token).digest('base64url').slice(0, 22)}`;
}

/** The form's fields, read as plain strings (urlencoded, not extended: a repeated name gives a list). */
function formOf(body: unknown): PreferencesForm {
  const fields = (body && typeof body === 'object' ? body : {}) as Record<string, unknown>;
  const list = (value: unknown): string[] => (Array.isArray(value) ? value : value === undefined ? [] : [value]).filter((v): v is string => typeof v === 'string');
  if (list(fields.action)[0] === 'leave') return { action: 'leave' };
  return { action: 'save', ticked: list(fields.topic), resubscribe: list(fields.resubscribe).includes('yes') };
}

export function preferenceRoutes(deps: PreferenceDeps): Router {
  const router = express.Router();
  const perToken = deps.rateLimitPerToken ? limiter(deps.rateLimitPerToken, 60) : null;
  // Small: a form of checkboxes. A larger body is refused (413) before it is read whole.
  const parseForm = express.urlencoded({ extended: false, limit: '8kb', parameterLimit: 200 });

  /** The submitted form, or undefined after answering the page that says why it could not be read. */
  const readForm = (req: Request, res: Response): Promise<PreferencesForm | undefined> =>
    new Promise((resolve, reject) => {
      parseForm(req, res, (err?: unknown) => {
        if (!err) return resolve(formOf(req.body));
        const status = (err as { status?: unknown }).status;
        if (status !== 413 && status !== 400 && status !== 415) return reject(err);
        sendPage(res, status, unreadableFormPage(status === 413 ? 'the form sent was larger than this page ever sends' : 'the form sent could not be read'));
        resolve(undefined);
      });
    });

  /** The link's claims, or undefined after answering the page that says why (the link is opened by a person). */
  const verified = async (req: Request, res: Response): Promise<PreferencesClaims | undefined> => {
    const token = req.params.token ?? '';
    let claims: PreferencesClaims;
    let expired: boolean;
    try {
      ({ claims, expired } = verifyPreferencesToken(deps.signingSecret, token, deps.now()));
    } catch (err) {
      if (!isMicroflowsError(err) || err.status !== 400) throw err;
      sendPage(res, 400, invalidPreferencesLinkPage(err.message));
      return undefined;
    }
    try {
      await perToken?.take(tokenKey(token), 1, 'this preferences link was used too often');
    } catch (err) {
      if (!isMicroflowsError(err) || err.code !== 'rate_limited') throw err;
      res.set('Retry-After', String((err as RateLimitedError).retryAfterSeconds));
      sendPage(res, 429, preferencesTooManyRequestsPage());
      return undefined;
    }
    if (expired) {
      sendPage(res, 410, expiredPreferencesLinkPage());
      return undefined;
    }
    return claims;
  };

  /** The page's view of the customer now, or undefined after answering 404 (an erased customer stays erased). */
  const viewOf = async (res: Response, customerId: string): Promise<Omit<PreferencesView, 'saved'> | undefined> => {
    const profile = await deps.store.getProfile(customerId);
    if (!profile) {
      sendPage(res, 404, unknownCustomerPage());
      return undefined;
    }
    return { brandName: deps.brand?.name ?? null, topics: topicChoices(deps.flows(), deps.brand, profile), emailMarketing: profile.consent.email_marketing?.granted };
  };

  router.get(
    '/preferences/:token',
    asyncHandler(async (req, res) => {
      const claims = await verified(req, res);
      if (!claims) return;
      const view = await viewOf(res, claims.customerId);
      if (view) sendPage(res, 200, preferencesPage(view));
    }),
  );

  router.post(
    '/preferences/:token',
    asyncHandler(async (req, res) => {
      // Verified before anything else, the body included: a forged, altered or expired link gets its page and
      // records nothing.
      const claims = await verified(req, res);
      if (!claims) return;
      const submitted = await readForm(req, res);
      if (!submitted) return;
      const before = await viewOf(res, claims.customerId);
      if (!before) return;
      const change = preferencesChange(submitted, before.topics, before.emailMarketing);
      if (change) {
        const at = deps.now();
        // Not swallowed on failure: the customer must not be told their choice is saved when it is not.
        const results = await deps.queue.submit([
          trackEvent({
            messageId: randomUUID(),
            customerId: claims.customerId,
            name: PREFERENCES_UPDATED,
            properties: { ...change, delivery_key: claims.deliveryKey, flow_id: claims.flowId },
            context: { userAgent: req.headers['user-agent'] ?? null, ip: req.ip ?? null, source: 'preference-center' },
            timestamp: at,
            receivedAt: at,
          }),
        ]);
        dispatchRecorded(deps.dispatcher, deps.log, results);
      }
      const after = change ? await viewOf(res, claims.customerId) : before;
      if (!after) return;
      const saved = submitted.action === 'leave' ? 'left' : change ? 'saved' : 'unchanged';
      sendPage(res, 200, preferencesPage({ ...after, saved }));
    }),
  );

  return router;
}
