// The Segment HTTP Tracking API: /v1/track, identify, page, screen, group, alias and batch (plus the short paths
// analytics.js uses). Reads the body as bytes, parses it strictly, checks the source key (Basic auth or `writeKey`
// in the body: a `client` key is browser-safe and limited, a `server` key trusted), validates with core/segment-spec
// and core/source-policy, writes through the group-commit queue, answers, then dispatches.
// Served on node:http directly, ahead of express: express's routing and response helpers cost more per request
// than parsing and validating a call (bench/README.md, "ingest").
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type RequestHandler } from 'express';
import type { SourceKind } from '../core/api-keys';
import { BadEventError, ForbiddenError, PayloadTooLargeError, isMicroflowsError } from '../core/errors';
import type { EventType, NewEvent } from '../core/event';
import { BATCH_LIMIT_BYTES, EVENT_LIMIT_BYTES, parseBatchCall, parseCallOfType, type RejectedItem } from '../core/segment-spec';
import { checkClientEvent } from '../core/source-policy';
import { parseStrictJson } from '../core/strict-json';
import type { RecordEventResult } from '../store/store';
import { dispatchRecorded, type EventDispatcher } from './dispatcher';
import { errorAnswer } from './http-errors';
import type { KeyRing } from './auth';
import type { IngestQueue } from './ingest-queue';
import type { Limiter } from './rate-limits';

export interface IngestDeps {
  keys: KeyRing;
  queue: IngestQueue;
  dispatcher: EventDispatcher;
  log: (message: string) => void;
  now: () => number;
  /** How far a client key's event timestamps may stray from arrival (no backfill from browsers). */
  clientMaxSkewMs: number;
  /** Calls per second per source key (a batch counts its calls) and requests per second per client IP with a client key; null: unlimited. */
  limits: { perKey: Limiter | null; perIp: Limiter | null };
  /** The client's IP, through the proxies MICROFLOWS_TRUST_PROXY names. */
  clientIp: (req: IncomingMessage) => string;
  /** Throws HostNotAllowedError for a Host the server does not answer to. */
  checkHost: (req: IncomingMessage, path: string) => void;
}

/** Segment's convention: the write key is the Basic-auth username and the password is empty. */
export function writeKeyFromHeader(header: string | undefined): string | undefined {
  const match = header === undefined ? null : /^Basic\s+(\S+)\s*$/i.exec(header);
  if (!match?.[1]) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const key = colon === -1 ? decoded : decoded.slice(0, colon);
  return key === '' ? undefined : key;
}

/** Reads the body as bytes whatever its Content-Type (Segment clients differ), and words body-parser's errors our way. */
export function readBody(limitBytes: number, what: 'event' | 'batch' | 'webhook' | 'catalog'): RequestHandler {
  const raw = express.raw({ type: () => true, limit: limitBytes });
  const limitText = what === 'event' ? '32 KB per event' : what === 'batch' ? '500 KB per batch' : `${Math.round(limitBytes / 1024)} KB per ${what}`;
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

/** A request once `readBody` has run: the bytes are in `body` (an empty object when there was no body). */
type RequestWithBody = IncomingMessage & { body?: unknown };

export function bodyBytes(req: RequestWithBody): Buffer {
  return Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(Buffer.byteLength(text)), ...headers });
  res.end(text);
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

const CALL_TYPE_BY_PATH = new Map<string, EventType>(CALL_PATHS.flatMap(([type, paths]) => paths.map((path) => [path, type] as const)));
const BATCH_PATHS = new Set(['/v1/batch', '/v1/import']);

/** The route a request names, matched as express would: without the query string, any case, one trailing slash. */
function routeOf(url: string | undefined): string {
  const raw = url ?? '/';
  const query = raw.indexOf('?');
  const path = (query === -1 ? raw : raw.slice(0, query)).toLowerCase();
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}

/**
 * A node:http request listener for POST to the ingest paths: it answers and returns true, or returns false for any
 * other request (which then goes to the express app). Errors answer as the app's error handler does.
 */
export function ingestHandler(deps: IngestDeps): (req: IncomingMessage, res: ServerResponse) => boolean {
  const readEvent = readBody(EVENT_LIMIT_BYTES, 'event');
  const readBatch = readBody(BATCH_LIMIT_BYTES, 'batch');

  /**
   * Header first: a client with a wrong key is told so without its body being read. Without the header the key
   * must be in the body, so the body is parsed first (and a malformed one is a 400).
   */
  const authorizedBody = async (req: RequestWithBody): Promise<{ body: unknown; kind: SourceKind; keyId: string }> => {
    const headerKey = writeKeyFromHeader(req.headers.authorization);
    const fromHeader = headerKey === undefined ? undefined : await deps.keys.sourceKey(headerKey, '');
    const body = parseStrictJson(bodyBytes(req));
    if (fromHeader !== undefined) return { body, kind: fromHeader.kind, keyId: fromHeader.id };
    const bodyKey = body && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>).writeKey : undefined;
    const fromBody = await deps.keys.sourceKey(typeof bodyKey === 'string' && bodyKey !== '' ? bodyKey : undefined, ', or as "writeKey" in the body');
    return { body, kind: fromBody.kind, keyId: fromBody.id };
  };

  /** A client key's requests are limited per IP; every key's calls per key (named by its id). */
  const takeLimits = async (req: IncomingMessage, keyId: string, kind: SourceKind, calls: number): Promise<void> => {
    if (kind === 'client' && deps.limits.perIp) await deps.limits.perIp.take(deps.clientIp(req), 1, 'requests from this IP address with a client key');
    if (deps.limits.perKey) await deps.limits.perKey.take(keyId, calls, 'calls with this source key');
  };

  const dispatchAll = (results: RecordEventResult[]) => dispatchRecorded(deps.dispatcher, deps.log, results);

  const single = async (type: EventType, req: RequestWithBody, res: ServerResponse): Promise<void> => {
    const { body, kind, keyId } = await authorizedBody(req);
    await takeLimits(req, keyId, kind, 1);
    const event: NewEvent = { ...parseCallOfType(type, body, deps.now(), randomUUID()), origin: kind };
    if (kind === 'client') checkClientEvent(event, null, { now: event.receivedAt, maxSkewMs: deps.clientMaxSkewMs });
    const results = await deps.queue.submit([event]);
    const refused = results[0]?.refused;
    // The store wrote nothing of a refused call (a client key merging identified customers, granting their consent).
    if (refused) throw new ForbiddenError(refused.message, refused.field);
    // Answer first: the event is durable now, and dispatch must never make the client retry or wait. A dropped event
    // (the customer allows no behavioral tracking) is their choice, not the client's error: a 200 that says so.
    const dropped = results[0]?.dropped;
    sendJson(res, 200, dropped ? { success: true, dropped } : { success: true });
    dispatchAll(results);
  };

  const batch = async (req: RequestWithBody, res: ServerResponse): Promise<void> => {
    const { body, kind, keyId } = await authorizedBody(req);
    const parsed = parseBatchCall(body, deps.now(), randomUUID);
    await takeLimits(req, keyId, kind, Math.max(1, parsed.events.length));
    const rejected: RejectedItem[] = [...parsed.rejected];
    /** Positions refused because a client key may not do that (403 when nothing else was wrong). */
    const forbidden = new Set<number>();
    // Each accepted event's position in the batch: the parser keeps the order and skips the rejected positions.
    const skipped = new Set(parsed.rejected.map((r) => r.index));
    const positions: number[] = [];
    for (let index = 0; positions.length < parsed.events.length; index++) if (!skipped.has(index)) positions.push(index);
    const events: NewEvent[] = [];
    const eventPositions: number[] = [];
    parsed.events.forEach((parsedEvent, i) => {
      const event: NewEvent = { ...parsedEvent, origin: kind };
      if (kind === 'client') {
        try {
          checkClientEvent(event, positions[i]!, { now: event.receivedAt, maxSkewMs: deps.clientMaxSkewMs });
        } catch (err) {
          if (!isMicroflowsError(err) || err.status >= 500) throw err;
          if (err.status === 403) forbidden.add(positions[i]!);
          rejected.push({ index: positions[i]!, field: (err as { field?: string }).field, message: err.message });
          return;
        }
      }
      events.push(event);
      eventPositions.push(positions[i]!);
    });
    if (events.length === 0) return refuseBatch(res, rejected, forbidden);
    const results = await deps.queue.submit(events);
    results.forEach((result, i) => {
      if (!result.refused) return;
      forbidden.add(eventPositions[i]!);
      const field = `batch[${eventPositions[i]!}].${result.refused.field}`;
      rejected.push({ index: eventPositions[i]!, field, message: `${field}: ${result.refused.message}` });
    });
    const recorded = results.filter((r) => !r.refused);
    if (recorded.length === 0) return refuseBatch(res, rejected, forbidden);
    rejected.sort((x, y) => x.index - y.index);
    const duplicates = recorded.filter((r) => r.duplicate).length;
    // Calls not stored because their customer allows no behavioral tracking, by position; listed only when there are some.
    const dropped = results.flatMap((r, i) => (r.dropped ? [{ index: eventPositions[i]!, reason: r.dropped.reason }] : []));
    const answer = { success: true, accepted: recorded.length - dropped.length, duplicates, rejected };
    sendJson(res, 200, dropped.length > 0 ? { ...answer, dropped } : answer);
    dispatchAll(recorded);
  };

  /** No call of the batch was taken: 403 when a client key was refused what only server keys may do, else 400. */
  const refuseBatch = (res: ServerResponse, rejected: RejectedItem[], forbidden: Set<number>): void => {
    rejected.sort((x, y) => x.index - y.index);
    const first = rejected.slice(0, 3).map((r) => r.message);
    const allForbidden = rejected.every((r) => forbidden.has(r.index));
    sendJson(res, allForbidden ? 403 : 400, {
      error: allForbidden ? 'forbidden' : 'bad_event',
      message: `no call in the batch was accepted: ${first.join('; ')}${rejected.length > 3 ? `; and ${rejected.length - 3} more` : ''}`,
      rejected,
    });
  };

  const answerError = (res: ServerResponse, err: unknown) => {
    if (res.headersSent) return deps.log(`[http] error after the response was sent: ${(err as Error)?.stack ?? String(err)}`);
    const answer = errorAnswer(err, deps.log);
    sendJson(res, answer.status, answer.body, answer.headers);
  };

  return (req, res) => {
    if (req.method !== 'POST') return false;
    const path = routeOf(req.url);
    const type = CALL_TYPE_BY_PATH.get(path);
    if (type === undefined && !BATCH_PATHS.has(path)) return false;
    try {
      deps.checkHost(req, path);
    } catch (err) {
      answerError(res, err);
      return true;
    }
    // body-parser's reader needs only node's request and response.
    const read = (type === undefined ? readBatch : readEvent) as unknown as (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;
    read(req, res, (err?: unknown) => {
      if (err !== undefined && err !== null) return answerError(res, err);
      (type === undefined ? batch(req, res) : single(type, req, res)).catch((e: unknown) => answerError(res, e));
    });
    return true;
  };
}

export type { NewEvent };
