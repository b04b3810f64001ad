// The Segment HTTP Tracking API: /v1/track, identify, page, screen, group, alias and batch (plus the short paths
// analytics.js uses). Reads the body as bytes, parses it strictly, checks the write key (Basic auth or `writeKey`
// in the body), validates with core/segment-spec, writes through the group-commit queue, answers, then dispatches.
// Served on node:http directly, ahead of express: express's routing and response helpers cost more per request
// than parsing and validating a call (bench/README.md, "ingest").
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type RequestHandler } from 'express';
import { BadEventError, PayloadTooLargeError, UnauthorizedError } from '../core/errors';
import type { EventType, NewEvent } from '../core/event';
import { BATCH_LIMIT_BYTES, EVENT_LIMIT_BYTES, parseBatchCall, parseCallOfType } from '../core/segment-spec';
import { parseStrictJson } from '../core/strict-json';
import type { RecordEventResult } from '../store/store';
import { dispatchRecorded, type EventDispatcher } from './dispatcher';
import { errorAnswer } from './http-errors';
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
  const checkKey = writeKeyChecker(deps.writeKey);
  const readEvent = readBody(EVENT_LIMIT_BYTES, 'event');
  const readBatch = readBody(BATCH_LIMIT_BYTES, 'batch');

  /**
   * Header first: a client with a wrong key is told so without its body being read. Without the header the key
   * must be in the body, so the body is parsed first (and a malformed one is a 400).
   */
  const authorizedBody = (req: RequestWithBody): unknown => {
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

  const single = async (type: EventType, req: RequestWithBody, res: ServerResponse): Promise<void> => {
    const event = parseCallOfType(type, authorizedBody(req), deps.now(), randomUUID());
    const results = await deps.queue.submit([event]);
    // Answer first: the event is durable now, and dispatch must never make the client retry or wait.
    sendJson(res, 200, { success: true });
    dispatchAll(results);
  };

  const batch = async (req: RequestWithBody, res: ServerResponse): Promise<void> => {
    const { events, rejected } = parseBatchCall(authorizedBody(req), deps.now(), randomUUID);
    if (events.length === 0) {
      const first = rejected.slice(0, 3).map((r) => r.message);
      sendJson(res, 400, {
        error: 'bad_event',
        message: `no call in the batch was accepted: ${first.join('; ')}${rejected.length > 3 ? `; and ${rejected.length - 3} more` : ''}`,
        rejected,
      });
      return;
    }
    const results = await deps.queue.submit(events);
    const duplicates = results.filter((r) => r.duplicate).length;
    sendJson(res, 200, { success: true, accepted: events.length, duplicates, rejected });
    dispatchAll(results);
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
