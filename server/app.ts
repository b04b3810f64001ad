// The HTTP surface: Segment-compatible ingest (/v1/track, /v1/identify) and the read-only admin API (/api/*).
// Only wiring lives here: validation is core/segment-spec, persistence is the store, Temporal is the dispatcher.
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import express, { type ErrorRequestHandler, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import type { Config } from '../core/config';
import type { NewEvent } from '../core/event';
import { BadEventError, PayloadTooLargeError, UnauthorizedError, isMicroflowsError } from '../core/errors';
import { parseIdentifyCall, parseTrackCall } from '../core/segment-spec';
import type { Store } from '../store/store';
import type { EventDispatcher } from './dispatcher';
import { BadRequestError, NotFoundError } from './http-errors';

/** Segment's per-event limit; applied to the decoded body, so a gzipped request cannot smuggle in more. */
export const EVENT_LIMIT_BYTES = 32 * 1024;

export interface AppDeps {
  store: Store;
  config: Pick<Config, 'writeKey'>;
  dispatcher: EventDispatcher;
  /** Where unexpected errors and dispatch failures are reported; stderr by default. */
  log?: (message: string) => void;
  /** Arrival clock for events; tests pin it. */
  now?: () => number;
}

/** Express 4 does not catch rejected promises from handlers; this forwards them to the error middleware. */
function asyncHandler(handler: (req: Request, res: Response) => Promise<void>): RequestHandler {
  return (req, res, next) => {
    handler(req, res).catch(next);
  };
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/** Segment's convention: the write key is the Basic-auth username and the password is empty. */
function writeKeyFrom(header: string | undefined): string | undefined {
  const match = header === undefined ? null : /^Basic\s+(\S+)\s*$/i.exec(header);
  if (!match?.[1]) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const key = colon === -1 ? decoded : decoded.slice(0, colon);
  return key === '' ? undefined : key;
}

function requireWriteKey(writeKey: string): RequestHandler {
  // Comparing digests keeps the comparison constant-time whatever the key's length.
  const expected = digest(writeKey);
  return (req, _res, next) => {
    const key = writeKeyFrom(req.headers.authorization);
    if (key === undefined) {
      next(new UnauthorizedError('missing write key: send it as the username of HTTP Basic auth, with an empty password'));
    } else if (!timingSafeEqual(digest(key), expected)) {
      next(new UnauthorizedError('wrong write key: use the MICROFLOWS_WRITE_KEY this server runs with'));
    } else {
      next();
    }
  };
}

/** Reads the body as bytes whatever its Content-Type (Segment clients differ), and words body-parser's errors our way. */
function readEventBody(): RequestHandler {
  const raw = express.raw({ type: () => true, limit: EVENT_LIMIT_BYTES });
  return (req, res, next) => {
    raw(req, res, (err?: unknown) => {
      if (err === undefined || err === null) return next();
      const e = err as { type?: string; status?: number; length?: number; message?: string };
      if (e.type === 'entity.too.large') {
        // `length` comes from Content-Length; a chunked body is cut off as soon as it passes the limit.
        const size = e.length !== undefined ? `${e.length} bytes` : `more than ${EVENT_LIMIT_BYTES} bytes`;
        return next(new PayloadTooLargeError(`event is ${size}; the limit is 32 KB per event`));
      }
      if (e.type === 'encoding.unsupported') return next(new BadEventError(`${e.message ?? 'unsupported Content-Encoding'}: send gzip, deflate or no encoding`));
      // Aborted or malformed transfers: the client's fault, so a 400 rather than a logged 500.
      if (typeof e.status === 'number' && e.status < 500) return next(new BadEventError(`could not read the body: ${e.message ?? e.type}`));
      next(err);
    });
  };
}

function jsonBody(req: Request): unknown {
  const bytes: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new BadEventError(`the body is not valid JSON: ${(err as Error).message}`);
  }
}

function stringQuery(req: Request, name: string): string | undefined {
  const value = req.query[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new BadRequestError('give it once, as a single string', name);
  return value;
}

export function createApp(deps: AppDeps): express.Express {
  const { store, dispatcher } = deps;
  const log = deps.log ?? ((message: string) => console.error(message));
  const now = deps.now ?? Date.now;
  const app = express();
  app.disable('x-powered-by');

  const ingest = (parse: (body: unknown, receivedAt: number, fallbackMessageId: string) => NewEvent) =>
    asyncHandler(async (req, res) => {
      const receivedAt = now();
      const event = parse(jsonBody(req), receivedAt, randomUUID());
      const result = await store.recordEvent(event, { needsDispatch: dispatcher.needsDispatch(event) });
      // Answer first: the event is durable now, and dispatch must never make the client retry or wait.
      res.status(200).json({ success: true });
      if (result.duplicate) return;
      try {
        dispatcher.dispatch(result);
      } catch (err) {
        // The event stays undispatched in the store, so recovery at the next start picks it up.
        log(`[ingest] dispatch of ${result.event.messageId} failed: ${(err as Error).stack ?? String(err)}`);
      }
    });

  const authorize = requireWriteKey(deps.config.writeKey);
  app.post('/v1/track', authorize, readEventBody(), ingest(parseTrackCall));
  app.post('/v1/identify', authorize, readEventBody(), ingest(parseIdentifyCall));

  app.get('/api/health', (_req, res) => {
    res.json({ status: 'ok', store: store.dialect });
  });

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

  app.use((req: Request, _res: Response, next: NextFunction) => {
    next(new NotFoundError(`no route for ${req.method} ${req.path}`));
  });

  const handleErrors: ErrorRequestHandler = (err: unknown, _req, res, _next) => {
    if (res.headersSent) {
      log(`[http] error after the response was sent: ${(err as Error)?.stack ?? String(err)}`);
      return;
    }
    // By shape, not instanceof: errors from another copy of core/ (tsx vs jest, bundles) still count.
    if (isMicroflowsError(err)) {
      const field = (err as { field?: unknown }).field;
      if (err.status === 401) res.set('WWW-Authenticate', 'Basic realm="microflows"');
      res.status(err.status).json({ error: err.code, message: err.message, ...(typeof field === 'string' ? { field } : {}) });
      return;
    }
    log(`[http] unexpected error: ${(err as Error)?.stack ?? String(err)}`);
    res.status(500).json({ error: 'internal_error', message: 'internal error; the server log has the details' });
  };
  app.use(handleErrors);

  return app;
}
