// The ESPs' event webhooks (SendGrid, Postmark): each delivery, open, click, bounce, spam report and unsubscribe they
// report becomes the same canonical track event the open pixel and click redirect record.
import express, { type Router } from 'express';
import { normalizePostmarkEvent, normalizeSendGridEvents, type EngagementEvent, type NormalizedWebhook } from '../core/esp-webhooks';
import type { NewEvent } from '../core/event';
import { parseStrictJson } from '../core/strict-json';
import type { RecordEventResult, Store } from '../store/store';
import { dispatchRecorded, type EventDispatcher } from './dispatcher';
import { asyncHandler } from './http-errors';
import { bodyBytes, readBody, requireWriteKey } from './ingest-routes';
import type { IngestQueue } from './ingest-queue';
import { trackEvent } from './tracking-routes';

export interface WebhookDeps {
  store: Store;
  queue: IngestQueue;
  dispatcher: EventDispatcher;
  writeKey: string;
  log: (message: string) => void;
  now: () => number;
}

/** ESPs batch many events per POST (SendGrid up to thousands). */
const WEBHOOK_LIMIT_BYTES = 5 * 1024 * 1024;

export function webhookRoutes(deps: WebhookDeps): Router {
  const router = express.Router();

  const record = async (events: NewEvent[]): Promise<RecordEventResult[]> => {
    const results = await deps.queue.submit(events);
    dispatchRecorded(deps.dispatcher, deps.log, results);
    return results;
  };

  const webhook = (provider: string, normalize: (body: unknown) => NormalizedWebhook) =>
    asyncHandler(async (req, res) => {
      const { events, ignored } = normalize(parseStrictJson(bodyBytes(req), { maxDepth: 64 }));
      const receivedAt = deps.now();
      const accepted: NewEvent[] = [];
      const unknown: Array<{ index: number; reason: string }> = [];
      for (const [index, event] of events.entries()) {
        const customerId = event.customerId ?? (await deps.store.customerIdByEmail(event.email));
        if (customerId === undefined) {
          unknown.push({ index, reason: `no customer has the email ${event.email}` });
          continue;
        }
        accepted.push(engagementEvent(event, customerId, provider, receivedAt));
      }
      const results = await record(accepted);
      res.status(200).json({
        success: true,
        accepted: accepted.length,
        duplicates: results.filter((r) => r.duplicate).length,
        ignored: [...ignored, ...unknown],
      });
    });

  const auth = requireWriteKey(deps.writeKey);
  router.post('/webhooks/sendgrid', auth, readBody(WEBHOOK_LIMIT_BYTES, 'webhook'), webhook('sendgrid', normalizeSendGridEvents));
  router.post('/webhooks/postmark', auth, readBody(WEBHOOK_LIMIT_BYTES, 'webhook'), webhook('postmark', normalizePostmarkEvent));
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
