// Errors of the admin API's own requests (routes and query strings), shaped like core's so one handler answers all.
import type { Request, RequestHandler, Response } from 'express';
import { BadInputError, MicroflowsError, OverloadedError, RateLimitedError, isMicroflowsError } from '../core/errors';

/** A query parameter is malformed; `field` names it. */
export class BadRequestError extends BadInputError {
  override readonly code = 'bad_request';
  override name = 'BadRequestError';
}

export class NotFoundError extends MicroflowsError {
  override readonly status = 404;
  override readonly code = 'not_found';
  override name = 'NotFoundError';
}

/** Express 4 does not catch rejected promises from handlers; this forwards them to the error middleware. */
export function asyncHandler(handler: (req: Request, res: Response) => Promise<void>): RequestHandler {
  return (req, res, next) => {
    handler(req, res).catch(next);
  };
}

/** What an error answers: status, headers and the JSON body, shared by the express app and the raw ingest path. */
export interface ErrorAnswer {
  status: number;
  headers: Record<string, string>;
  body: Record<string, unknown>;
}

/** Our errors answer with their status, code and message (and `field`); anything else is a logged 500. */
export function errorAnswer(err: unknown, log: (message: string) => void): ErrorAnswer {
  // By shape, not instanceof: errors from another copy of core/ (tsx vs jest, bundles) still count.
  if (isMicroflowsError(err)) {
    const field = (err as { field?: unknown }).field;
    const headers: Record<string, string> = {};
    if (err.status === 401) headers['WWW-Authenticate'] = (err as { scheme?: string }).scheme === 'Bearer' ? 'Bearer realm="microflows-admin"' : 'Basic realm="microflows"';
    if (err instanceof OverloadedError || err instanceof RateLimitedError || err.code === 'overloaded' || err.code === 'rate_limited') {
      headers['Retry-After'] = String((err as OverloadedError).retryAfterSeconds ?? 1);
    }
    return { status: err.status, headers, body: { error: err.code, message: err.message, ...(typeof field === 'string' ? { field } : {}) } };
  }
  log(`[http] unexpected error: ${(err as Error)?.stack ?? String(err)}`);
  return { status: 500, headers: {}, body: { error: 'internal_error', message: 'internal error; the server log has the details' } };
}
