// Typed errors for every failure a user can cause; each carries what to fix and where.

/** Base of all user-facing errors; `status` is the HTTP status the server answers with. */
export class MicroflowsError extends Error {
  readonly status: number = 500;
  readonly code: string = 'internal_error';
  override name = 'MicroflowsError';
}

/** Where in a source file a problem is: file, 1-based line and column, and the path inside the document. */
export interface SourceLocation {
  file: string;
  line?: number;
  column?: number;
  /** JSON-path-like location inside the document, e.g. `steps[2].split.when` */
  path?: string;
}

export function formatLocation(loc: SourceLocation): string {
  const position = loc.line !== undefined ? `:${loc.line}${loc.column !== undefined ? `:${loc.column}` : ''}` : '';
  return `${loc.file}${position}${loc.path ? ` (${loc.path})` : ''}`;
}

/** One problem found in a flow, segment or template file. */
export interface FileProblem extends SourceLocation {
  message: string;
  severity: 'error' | 'warning';
}

export function formatProblem(problem: FileProblem): string {
  return `${formatLocation(problem)}: ${problem.severity}: ${problem.message}`;
}

/** A flow/segment/template file is invalid; lists every problem found, not just the first. */
export class InvalidFileError extends MicroflowsError {
  override readonly status = 422;
  override readonly code = 'invalid_file';
  override name = 'InvalidFileError';
  constructor(readonly problems: FileProblem[]) {
    super(problems.filter((p) => p.severity === 'error').map(formatProblem).join('\n'));
  }
}

/** A condition (flow entry, split, trigger filter) is malformed; `path` says where inside it. */
export class InvalidConditionError extends MicroflowsError {
  override readonly status = 422;
  override readonly code = 'invalid_condition';
  override name = 'InvalidConditionError';
  constructor(
    message: string,
    readonly path: string,
  ) {
    super(`${path}: ${message}`);
  }
}

/** A duration string such as `1h` or `7d` could not be read. */
export class InvalidDurationError extends MicroflowsError {
  override readonly status = 422;
  override readonly code = 'invalid_duration';
  override name = 'InvalidDurationError';
}

/** Input the client sent is wrong; `field` names the JSON path or parameter at fault. */
export class BadInputError extends MicroflowsError {
  override readonly status: number = 400;
  override readonly code: string = 'bad_input';
  override name = 'BadInputError';
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(field ? `${field}: ${message}` : message);
  }
}

/** An ingested event is malformed. Nothing is stored. */
export class BadEventError extends BadInputError {
  override readonly code: string = 'bad_event';
  override name = 'BadEventError';
}

/** The body is larger than the limit allowed for this endpoint. */
export class PayloadTooLargeError extends BadEventError {
  override readonly code = 'payload_too_large';
  override name = 'PayloadTooLargeError';
}

/** The server has more events waiting to be written than it accepts; the client should retry after `retryAfterSeconds`. */
export class OverloadedError extends MicroflowsError {
  override readonly status = 429;
  override readonly code = 'overloaded';
  override name = 'OverloadedError';
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
  }
}

/** The write key is missing or wrong. */
export class UnauthorizedError extends MicroflowsError {
  override readonly status = 401;
  override readonly code = 'unauthorized';
  override name = 'UnauthorizedError';
}

/** The credentials are valid but do not allow this (a key without the scope, a client key doing what only server keys may). */
export class ForbiddenError extends MicroflowsError {
  override readonly status = 403;
  override readonly code: string = 'forbidden';
  override name = 'ForbiddenError';
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(field ? `${field}: ${message}` : message);
  }
}

/** Too many requests from one key, client IP or token; retry after `retryAfterSeconds`. */
export class RateLimitedError extends MicroflowsError {
  override readonly status = 429;
  override readonly code = 'rate_limited';
  override name = 'RateLimitedError';
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
  }
}

/** A template could not be rendered (missing file, MJML error, unknown helper). */
export class TemplateError extends MicroflowsError {
  override readonly status = 422;
  override readonly code = 'template_error';
  override name = 'TemplateError';
}

/**
 * A product catalog (a `catalog/` file, or products sent to PUT /api/catalog/products) is invalid; lists every
 * problem found, each with file:line, the JSON path or column, and what to fix. Nothing of it is stored.
 */
export class CatalogError extends MicroflowsError {
  override readonly status = 400;
  override readonly code = 'invalid_catalog';
  override name = 'CatalogError';
  /** Where the first problem is (a JSON path such as `$[2].price`, or a CSV column): the API answers it as `field`. */
  readonly field: string | undefined;
  constructor(readonly problems: FileProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.field = problems[0]?.path;
  }
}

/** The configuration (env variables, paths, binaries) is wrong; the message says which variable to set. */
export class ConfigError extends MicroflowsError {
  override readonly code = 'config_error';
  override name = 'ConfigError';
}

/** Checks by shape, not instanceof, so errors that crossed a module or bundle boundary are still recognised. */
export function isMicroflowsError(err: unknown): err is MicroflowsError {
  return (
    typeof err === 'object' &&
    err !== null &&
    typeof (err as { status?: unknown }).status === 'number' &&
    typeof (err as { code?: unknown }).code === 'string' &&
    typeof (err as { message?: unknown }).message === 'string'
  );
}
