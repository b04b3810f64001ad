// Validates Segment HTTP Tracking API calls (track, identify) and turns them into NewEvents. Pure: the caller
// passes the arrival time and a fresh message id, so the same input always gives the same event.
import type { EventType, NewEvent } from './event';
import { BadEventError } from './errors';

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

function timeField(body: Json, field: string): number | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new BadEventError(`must be an ISO-8601 date string, got ${describe(value)}`, field);
  const ms = parseIsoTimestamp(value);
  if (ms === undefined) throw new BadEventError(`"${value}" is not an ISO-8601 date (e.g. 2024-05-01T12:00:00.000Z)`, field);
  return ms;
}

/**
 * The event's own time. An explicit `timestamp` is kept as sent (historical imports set it); otherwise a client
 * that reports `originalTimestamp` and `sentAt` by its own clock has its skew removed against our clock:
 * receivedAt - (sentAt - originalTimestamp), as Segment and RudderStack do. Without either, the arrival time.
 */
function eventTime(body: Json, receivedAt: number): number {
  const timestamp = timeField(body, 'timestamp');
  const original = timeField(body, 'originalTimestamp');
  const sentAt = timeField(body, 'sentAt');
  if (timestamp !== undefined) return timestamp;
  // Clamped: a client whose sentAt precedes its originalTimestamp would otherwise place the event in our future.
  if (original !== undefined && sentAt !== undefined) return Math.min(receivedAt, receivedAt - (sentAt - original));
  return receivedAt;
}

function messageIdOf(body: Json, fallback: string): string {
  const value = body.messageId;
  if (value === undefined || value === null || value === '') return fallback;
  if (typeof value !== 'string') throw new BadEventError(`must be a string, got ${describe(value)}`, 'messageId');
  return value;
}

function parseCall(type: EventType, body: unknown, receivedAt: number, fallbackMessageId: string): NewEvent {
  if (!isPlainObject(body)) throw new BadEventError(`the body must be a JSON object, got ${describe(body)}`);
  const userId = identity(body, 'userId');
  const anonymousId = identity(body, 'anonymousId');
  const customerId = userId ?? anonymousId;
  if (customerId === null) throw new BadEventError('userId or anonymousId is required: every call must say whose event it is', 'userId');

  let name: string | null = null;
  if (type === 'track') {
    const event = body.event;
    if (event === undefined || event === null) throw new BadEventError('is required for a track call: the name of the event, e.g. "Product Added"', 'event');
    if (typeof event !== 'string') throw new BadEventError(`must be a string, got ${describe(event)}`, 'event');
    if (event.trim() === '') throw new BadEventError('must not be empty', 'event');
    name = event;
  }

  return {
    messageId: messageIdOf(body, fallbackMessageId),
    type,
    customerId,
    userId,
    anonymousId,
    name,
    // identify carries no properties in the spec; anything sent there is ignored rather than rejected.
    properties: type === 'track' ? objectField(body, 'properties') : {},
    traits: objectField(body, 'traits'),
    context: objectField(body, 'context'),
    timestamp: eventTime(body, receivedAt),
    receivedAt,
  };
}

/** `POST /v1/track`. `fallbackMessageId` (a fresh UUID) is used only when the call has no messageId. */
export function parseTrackCall(body: unknown, receivedAt: number, fallbackMessageId: string): NewEvent {
  return parseCall('track', body, receivedAt, fallbackMessageId);
}

/** `POST /v1/identify`. `fallbackMessageId` (a fresh UUID) is used only when the call has no messageId. */
export function parseIdentifyCall(body: unknown, receivedAt: number, fallbackMessageId: string): NewEvent {
  return parseCall('identify', body, receivedAt, fallbackMessageId);
}
