// The Segment HTTP Tracking API: /v1/track, identify, page, screen, group, alias and batch (plus the short paths
// analytics.js uses). Reads the body as bytes, parses it strictly, checks the write key (Basic auth or `writeKey`
// in the body), validates with core/segment-spec, writes through the group-commit queue, answers, then dispatches.
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import express, { type Request, type RequestHandler, type Router } from 'express';
import { BadEventError, PayloadTooLargeError, UnauthorizedError } from '../core/errors';
import type { EventType, NewEvent } from '../core/event';
import { BATCH_LIMIT_BYTES, EVENT_LIMIT_BYTES, parseBatchCall, parseCallOfType } from '../core/segment-spec';
import { parseStrictJson } from '../core/strict-json';
import type { RecordEventResult } from '../store/store';
import type { EventDispatcher } from './dispatcher';
import { asyncHandler } from './http-errors';
import type { IngestQueue } from './ingest-queue';

export interface IngestDeps {
  writeKey: string;
  queue: IngestQueue;
  dispatcher: EventDispatcher;
  log: (message: string) => void;
  now: () => number;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** Segment's convention: the write key is the Basic-auth username and the password is empty. */
function writeKeyFromHeader(header: string | undefined): string | undefined {
  const match = header === undefined ? null : /^Basic\s+(\S+)\s*$/i.exec(header);
  if (!match?.[1]) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const key = colon === -1 ? decoded : decoded.slice(0, colon);
  return key === '' ? undefined : key;
}

/** Checks a write key in constant time (comparing digests hides the key's length too). */
export function writeKeyChecker(writeKey: string): (key: string | undefined, where: string) => void {
  const expected = digest(writeKey);
  return (key, where) => {
    if (key === undefined) {
      throw new UnauthorizedError(`missing write key: send it as the username of HTTP Basic auth (empty password)${where}`);
    }
    if (!timingSafeEqual(digest(key), expected)) throw new UnauthorizedError('wrong write key: use the MICROFLOWS_WRITE_KEY this server runs with');
  };
}

/** Express middleware for routes that take the write key in Basic auth only (webhooks). */
export function requireWriteKey(writeKey: string): RequestHandler {
  const check = writeKeyChecker(writeKey);
  return (req, _res, next) => {
    try {
      check(writeKeyFromHeader(req.headers.authorization), '');
      next();
    } catch (err) {
      next(err);
    }
  };
}

/** Reads the body as bytes whatever its Content-Type (Segment clients differ), and words body-parser's errors our way. */
export function readBody(limitBytes: number, what: 'event' | 'batch' | 'webhook'): RequestHandler {
  const raw = express.raw({ type: () => true, limit: limitBytes });
  const limitText = what === 'event' ? '32 KB per event' : what === 'batch' ? '500 KB per batch' : `${Math.round(limitBytes / 1024)} KB per webhook`;
  return (req, res, next) => {
    raw(req, res, (err?: unknown) => {
      if (err === undefined || err === null) return next();
      const e = err as { type?: string; status?: number; length?: number; message?: string };
      if (e.type === 'entity.too.large') {
        // `length` comes from Content-Length; a chunked body is cut off as soon as it passes the limit.
        const size = e.length !== undefined ? `${e.length} bytes` : `more than ${limitBytes} bytes`;
        return next(new PayloadTooLargeError(`${what} is ${size}; the limit is ${limitText}`));
      }
      if (e.type === 'encoding.unsupported') return next(new BadEventError(`${e.message ?? 'unsupported Content-Encoding'}: send gzip, deflate or no encoding`));
      // Aborted or malformed transfers: the client's fault, so a 400 rather than a logged 500.
      if (typeof e.status === 'number' && e.status < 500) return next(new BadEventError(`could not read the body: ${e.message ?? e.type}`));
      next(err);
    });
  };
}

export function bodyBytes(req: Request): Buffer {
  return Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
}

/** Hands newly stored events to the dispatcher after the response; a dispatch failure never reaches the client. */
export function dispatchRecorded(dispatcher: EventDispatcher, log: (message: string) => void, results: RecordEventResult[]): void {
  for (const result of results) {
    if (result.duplicate) continue;
    try {
      dispatcher.dispatch(result);
    } catch (err) {
      // The event stays undispatched in the store, so recovery at the next start picks it up.
      log(`[ingest] dispatch of ${result.event.messageId} failed: ${(err as Error).stack ?? String(err)}`);
    }
  }
}

/** The single-call endpoints, with the one-letter paths analytics.js posts to. */
const CALL_PATHS: Array<[EventType, string[]]> = [
  ['track', ['/v1/track', '/v1/t']],
  ['identify', ['/v1/identify', '/v1/i']],
  ['page', ['/v1/page', '/v1/p']],
  ['screen', ['/v1/screen', '/v1/s']],
  ['group', ['/v1/group', '/v1/g']],
  ['alias', ['/v1/alias', '/v1/a']],
];

export function ingestRoutes(deps: IngestDeps): Router {
  const router = express.Router();
  const checkKey = writeKeyChecker(deps.writeKey);

  /**
   * Header first: a client with a wrong key is told so without its body being read. Without the header the key
   * must be in the body, so the body is parsed first (and a malformed one is a 400).
   */
  const authorizedBody = (req: Request): unknown => {
    const headerKey = writeKeyFromHeader(req.headers.authorization);
    if (headerKey !== undefined) checkKey(headerKey, '');
    const body = parseStrictJson(bodyBytes(req));
    if (headerKey === undefined) {
      const bodyKey = body && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>).writeKey : undefined;
      checkKey(typeof bodyKey === 'string' && bodyKey !== '' ? bodyKey : undefined, ', or as "writeKey" in the body');
    }
    return body;
  };

  const dispatchAll = (results: RecordEventResult[]) => dispatchRecorded(deps.dispatcher, deps.log, results);

  const single = (type: EventType) =>
    asyncHandler(async (req, res) => {
      const body = authorizedBody(req);
      const event = parseCallOfType(type, body, deps.now(), randomUUID());
      const results = await deps.queue.submit([event]);
      // Answer first: the event is durable now, and dispatch must never make the client retry or wait.
      res.status(200).json({ success: true });
      dispatchAll(results);
    });

  for (const [type, paths] of CALL_PATHS) router.post(paths, readBody(EVENT_LIMIT_BYTES, 'event'), single(type));

  router.post(
    ['/v1/batch', '/v1/import'],
    readBody(BATCH_LIMIT_BYTES, 'batch'),
    asyncHandler(async (req, res) => {
      const body = authorizedBody(req);
      const { events, rejected } = parseBatchCall(body, deps.now(), randomUUID);
      if (events.length === 0) {
        const first = rejected.slice(0, 3).map((r) => r.message);
        res.status(400).json({
          error: 'bad_event',
          message: `no call in the batch was accepted: ${first.join('; ')}${rejected.length > 3 ? `; and ${rejected.length - 3} more` : ''}`,
          rejected,
        });
        return;
      }
      const results = await deps.queue.submit(events);
      const duplicates = results.filter((r) => r.duplicate).length;
      res.status(200).json({ success: true, accepted: events.length, duplicates, rejected });
      dispatchAll(results);
    }),
  );
  return router;
}

export type { NewEvent };
