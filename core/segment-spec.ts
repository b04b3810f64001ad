// Validates Segment HTTP Tracking API calls (track, identify, page, screen, group, alias, batch) and turns them into NewEvents. Pure: the caller
// passes the arrival time and a fresh message id, so the same input always gives the same event.
import type { EventType, NewEvent } from './event';
import { mailboxProblem } from './email-address';
import { BadEventError, PayloadTooLargeError } from './errors';

type Json = Record<string, unknown>;

function isPlainObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  const type = typeof value;
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

/** userId/anonymousId: Segment libraries send strings, but numeric database ids arrive as JSON numbers too. */
function identity(body: Json, field: 'userId' | 'anonymousId'): string | null {
  const value = body[field];
  if (value === undefined || value === null || value === '') return null;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  throw new BadEventError(`must be a string or a number, got ${describe(value)}`, field);
}

function objectField(body: Json, field: string): Json {
  const value = body[field];
  if (value === undefined || value === null) return {};
  if (!isPlainObject(value)) throw new BadEventError(`must be a JSON object, got ${describe(value)}`, field);
  return value;
}

const ISO_8601 = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?([Zz]|[+-]\d{2}(?::?\d{2})?)?)?$/;

function daysInMonth(year: number, month: number): number {
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1] ?? 0;
}

/**
 * Parses an ISO-8601 date or date-time to epoch ms. Written out rather than Date.parse, which also accepts
 * non-ISO strings and reads a time without offset in the machine's zone; here a missing offset means UTC, so
 * the result does not depend on where the server runs.
 */
export function parseIsoTimestamp(text: string): number | undefined {
  const m = ISO_8601.exec(text.trim());
  if (!m) return undefined;
  const [, y, mo, d, h = '0', mi = '0', s = '0', fraction = '', zone = 'Z'] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 || second > 59) return undefined;
  let offsetMinutes = 0;
  if (zone !== 'Z' && zone !== 'z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const oh = Number(digits.slice(0, 2));
    const om = Number(digits.slice(2) || '0');
    if (oh > 23 || om > 59) return undefined;
    offsetMinutes = sign * (oh * 60 + om);
  }
  const date = new Date(0);
  // setUTCFullYear, unlike Date.UTC, does not map years 0-99 to 1900-1999.
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, Number(fraction.padEnd(3, '0').slice(0, 3)));
  return date.getTime() - offsetMinutes * 60_000;
}

/** Where a field is, for error messages: `event` for a single call, `batch[3].event` inside a batch. */
type At = (field: string) => string;
const topLevel: At = (field) => field;

function timeField(body: Json, field: string, at: At): number | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new BadEventError(`must be an ISO-8601 date string, got ${describe(value)}`, at(field));
  const ms = parseIsoTimestamp(value);
  if (ms === undefined) throw new BadEventError(`"${value}" is not an ISO-8601 date (e.g. 2024-05-01T12:00:00.000Z)`, at(field));
  return ms;
}

/**
 * The event's own time, by our clock. A client reports when the event happened (`originalTimestamp`, or
 * `timestamp` as server-side libraries send it) and when it sent it (`sentAt`), both by its own clock; the
 * difference is exact whatever the client's clock says, so timestamp = receivedAt - (sentAt - happenedAt), as
 * Segment and RudderStack do. A `timestamp` sent beside an `originalTimestamp`, or without `sentAt`, is an
 * explicit time (a backfill of history) and is kept as sent. An `originalTimestamp` without `sentAt`, or no
 * time at all: the arrival time.
 */
function eventTime(body: Json, receivedAt: number, at: At, batchSentAt: number | undefined): number {
  const timestamp = timeField(body, 'timestamp', at);
  const original = timeField(body, 'originalTimestamp', at);
  const sentAt = timeField(body, 'sentAt', at) ?? batchSentAt;
  if (timestamp !== undefined && original !== undefined) return timestamp;
  // originalTimestamp is a device clock by definition: without sentAt its skew is unknown, so it is not trusted.
  if (original !== undefined && sentAt === undefined) return receivedAt;
  const happened = original ?? timestamp;
  if (happened === undefined) return receivedAt;
  if (sentAt === undefined) return happened;
  // Clamped: a client whose sentAt precedes its event time would otherwise place the event in our future.
  return Math.min(receivedAt, receivedAt - (sentAt - happened));
}

function messageIdOf(body: Json, fallback: string, at: At): string {
  const value = body.messageId;
  if (value === undefined || value === null || value === '') return fallback;
  if (typeof value !== 'string') throw new BadEventError(`must be a string, got ${describe(value)}`, at('messageId'));
  return value;
}

function requiredId(body: Json, field: string, at: At, what: string): string {
  const value = body[field];
  if (value === undefined || value === null || value === '') throw new BadEventError(`is required for ${what}`, at(field));
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  throw new BadEventError(`must be a string or a number, got ${describe(value)}`, at(field));
}

function optionalString(body: Json, field: string, at: At): string | null {
  const value = body[field];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') throw new BadEventError(`must be a string, got ${describe(value)}`, at(field));
  return value;
}

export const CALL_TYPES: readonly EventType[] = ['track', 'identify', 'page', 'screen', 'group', 'alias'];

/** Context that a batch shares with its items (Segment merges top-level `context` and `integrations` into each). */
interface BatchDefaults {
  context: Json;
  integrations: Json;
  sentAt: number | undefined;
}

function parseCall(type: EventType, body: unknown, receivedAt: number, fallbackMessageId: string, at: At = topLevel, batch?: BatchDefaults): NewEvent {
  if (!isPlainObject(body)) throw new BadEventError(`must be a JSON object, got ${describe(body)}`, at === topLevel ? undefined : at('').replace(/\.$/, ''));
  const identityAt = (field: 'userId' | 'anonymousId') => {
    try {
      return identity(body, field);
    } catch {
      throw new BadEventError(`must be a string or a number, got ${describe(body[field])}`, at(field));
    }
  };
  const userId = identityAt('userId');
  const anonymousId = identityAt('anonymousId');
  if (type === 'alias' && userId === null) throw new BadEventError('is required for an alias call: the id the previous one becomes', at('userId'));
  const customerId = userId ?? anonymousId;
  if (customerId === null) throw new BadEventError('userId or anonymousId is required: every call must say whose event it is', at('userId'));

  let name: string | null = null;
  const properties: Json = type === 'track' || type === 'page' || type === 'screen' ? { ...objectFieldAt(body, 'properties', at) } : {};
  if (type === 'track') {
    const event = body.event;
    if (event === undefined || event === null) throw new BadEventError('is required for a track call: the name of the event, e.g. "Product Added"', at('event'));
    if (typeof event !== 'string') throw new BadEventError(`must be a string, got ${describe(event)}`, at('event'));
    if (event.trim() === '') throw new BadEventError('must not be empty', at('event'));
    name = event;
  } else if (type === 'page' || type === 'screen') {
    name = optionalString(body, 'name', at);
    const category = optionalString(body, 'category', at);
    if (category !== null && properties.category === undefined) properties.category = category;
  } else if (type === 'group') {
    properties.groupId = requiredId(body, 'groupId', at, 'a group call: the id of the account or company');
  } else if (type === 'alias') {
    properties.previousId = requiredId(body, 'previousId', at, 'an alias call: the id the user was known by before');
  }

  // Validated on every call; kept only where the spec gives them meaning (identify and group).
  const traits = objectFieldAt(body, 'traits', at);
  if (type === 'identify') checkEmailTrait(traits, at);
  const integrations = objectFieldAt(body, 'integrations', at);
  const context = { ...(batch?.context ?? {}), ...objectFieldAt(body, 'context', at) };
  const mergedIntegrations = { ...(batch?.integrations ?? {}), ...integrations };
  if (Object.keys(mergedIntegrations).length > 0) context.integrations = mergedIntegrations;

  return {
    messageId: messageIdOf(body, fallbackMessageId, at),
    type,
    customerId,
    userId,
    anonymousId,
    name,
    properties,
    traits: type === 'identify' || type === 'group' ? traits : {},
    context,
    timestamp: eventTime(body, receivedAt, at, batch?.sentAt),
    receivedAt,
  };
}

/**
 * The email trait is where a customer's mail goes: one plain mailbox, or nothing (null or "" clear it). A list or a
 * group would make nodemailer send to several recipients, and CR/LF could inject headers, whatever key sent it.
 */
function checkEmailTrait(traits: Json, at: At): void {
  const email = traits.email;
  if (email === undefined || email === null || email === '') return;
  const problem = mailboxProblem(email);
  if (problem !== undefined) throw new BadEventError(problem, at('traits.email'));
}

function objectFieldAt(body: Json, field: string, at: At): Json {
  try {
    return objectField(body, field);
  } catch {
    throw new BadEventError(`must be a JSON object, got ${describe(body[field])}`, at(field));
  }
}

/** `POST /v1/<type>` for one call. `fallbackMessageId` (a fresh UUID) is used only when the call has no messageId. */
export function parseCallOfType(type: EventType, body: unknown, receivedAt: number, fallbackMessageId: string): NewEvent {
  return parseCall(type, body, receivedAt, fallbackMessageId);
}

/** `POST /v1/track`. `fallbackMessageId` (a fresh UUID) is used only when the call has no messageId. */
export function parseTrackCall(body: unknown, receivedAt: number, fallbackMessageId: string): NewEvent {
  return parseCall('track', body, receivedAt, fallbackMessageId);
}

/** `POST /v1/identify`. `fallbackMessageId` (a fresh UUID) is used only when the call has no messageId. */
export function parseIdentifyCall(body: unknown, receivedAt: number, fallbackMessageId: string): NewEvent {
  return parseCall('identify', body, receivedAt, fallbackMessageId);
}

/** Segment's per-event limit, in bytes of JSON. */
export const EVENT_LIMIT_BYTES = 32 * 1024;
/** Segment's per-batch limit, in bytes of JSON. */
export const BATCH_LIMIT_BYTES = 500 * 1024;

export interface RejectedItem {
  index: number;
  field?: string;
  message: string;
}

/**
 * `POST /v1/batch`: validates each item on its own, so one bad item is reported by its index and the good ones
 * are kept. The batch's own `context`, `integrations` and `sentAt` apply to every item (the item's win).
 * `newMessageId` gives a fresh id for items without one. Throws only when the batch itself is malformed.
 */
export function parseBatchCall(body: unknown, receivedAt: number, newMessageId: () => string): { events: NewEvent[]; rejected: RejectedItem[] } {
  if (!isPlainObject(body)) throw new BadEventError(`the body must be a JSON object with a "batch" array, got ${describe(body)}`);
  const items = body.batch;
  if (!Array.isArray(items)) throw new BadEventError(`must be an array of calls, got ${items === undefined ? 'nothing' : describe(items)}`, 'batch');
  if (items.length === 0) throw new BadEventError('must hold at least one call', 'batch');
  const defaults: BatchDefaults = {
    context: objectField(body, 'context'),
    integrations: objectField(body, 'integrations'),
    sentAt: timeField(body, 'sentAt', topLevel),
  };
  const events: NewEvent[] = [];
  const rejected: RejectedItem[] = [];
  items.forEach((item: unknown, index) => {
    const at: At = (field) => `batch[${index}]${field ? `.${field}` : ''}`;
    try {
      if (!isPlainObject(item)) throw new BadEventError(`must be a JSON object, got ${describe(item)}`, at(''));
      const size = Buffer.byteLength(JSON.stringify(item));
      if (size > EVENT_LIMIT_BYTES) throw new PayloadTooLargeError(`event is ${size} bytes; the limit is 32 KB per event`, at(''));
      const type = item.type;
      if (typeof type !== 'string' || !CALL_TYPES.includes(type as EventType)) {
        throw new BadEventError(`must be one of ${CALL_TYPES.join(', ')}, got ${typeof type === 'string' ? `"${type}"` : describe(type)}`, at('type'));
      }
      events.push(parseCall(type as EventType, item, receivedAt, newMessageId(), at, defaults));
    } catch (err) {
      if (!(err instanceof BadEventError)) throw err;
      rejected.push({ index, field: err.field, message: err.message });
    }
  });
  return { events, rejected };
}
