// Errors of the admin API's own requests (routes and query strings), shaped like core's so one handler answers all.
import type { Request, RequestHandler, Response } from 'express';
import { BadInputError, MicroflowsError } from '../core/errors';

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
