// A second, brute-force reading of the ingest rules (README "Sending events" and the rules core/segment-spec.ts
// documents), sharing no code with core/: which fields of a call or batch break a rule, and the event a valid call
// must become. Property tests compare the product with it.

export type CallType = 'track' | 'identify' | 'page' | 'screen' | 'group' | 'alias';
export const CALL_TYPES: readonly CallType[] = ['track', 'identify', 'page', 'screen', 'group', 'alias'];

/** Bytes of JSON per call and per batch (README "Limits"), and nesting levels of objects and arrays. */
export const EVENT_LIMIT = 32 * 1024;
export const BATCH_LIMIT = 500 * 1024;
export const MAX_NESTING = 32;

type Json = Record<string, unknown>;

export const isPlainObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
const isAbsent = (value: unknown) => value === undefined || value === null;
/** Identities, ids and messageIds treat an empty string as not sent. */
const isBlank = (value: unknown) => isAbsent(value) || value === '';
const isIdValue = (value: unknown) => typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value));

// --- numbers and nesting: what strict JSON refuses that JSON.parse accepts -------------------------------------

/** Whether the number JSON.stringify writes for `n` is refused: not finite, or written as an integer beyond 2^53 - 1. */
export function isUnsafeNumber(n: number): boolean {
  if (!Number.isFinite(n)) return true;
  const text = JSON.stringify(n);
  return !/[.eE]/.test(text) && Math.abs(n) > Number.MAX_SAFE_INTEGER;
}

/** Whether text holds what the README says no store keeps as sent: U+0000, or a surrogate without its pair. */
export function hasUnstorableText(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit === 0) return true;
    const high = unit >= 0xd800 && unit <= 0xdbff;
    const low = unit >= 0xdc00 && unit <= 0xdfff;
    if (low) return true;
    if (high) {
      const next = text.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) return true;
      i++;
    }
  }
  return false;
}

/**
 * Whether JSON.stringify(value) is accepted by a strict parser: no unsafe number, no nesting deeper than the limit,
 * no string or key with unstorable text.
 */
export function isStrictSafe(value: unknown, level = 0): boolean {
  if (typeof value === 'number') return !isUnsafeNumber(value);
  if (typeof value === 'string') return !hasUnstorableText(value);
  if (typeof value !== 'object' || value === null) return true;
  if (level + 1 > MAX_NESTING) return false;
  if (Object.keys(value).some(hasUnstorableText)) return false;
  return Object.values(value).every((v) => isStrictSafe(v, level + 1));
}

// --- ISO-8601 times ---------------------------------------------------------------------------------------------

// A date, or a date and time (minutes at least), with an optional fraction of seconds and an optional zone.
const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?)?$/;

/** Days since 1970-01-01 of a proleptic Gregorian date, counted out (Hinnant's days_from_civil), not via Date. */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146_097 + dayOfEra - 719_468;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/**
 * Epoch ms of an ISO-8601 string, or undefined when it is not one. No offset means UTC; fractions beyond
 * milliseconds are cut; a leap second (:60) is refused, as no stored time can hold it.
 */
export function isoToMs(text: string): number | undefined {
  const m = ISO.exec(text.trim());
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = [m[1], m[2], m[3], m[4] ?? '0', m[5] ?? '0', m[6] ?? '0'].map(Number) as [number, number, number, number, number, number];
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  let offset = 0;
  if (m[9] !== undefined) {
    const oh = Number(m[10]);
    const om = Number(m[11] ?? '0');
    if (oh > 23 || om > 59) return undefined;
    offset = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const ms = Number(((m[7] ?? '') + '000').slice(0, 3));
  return ((daysFromCivil(year, month, day) * 24 + hour) * 60 + minute - offset) * 60_000 + second * 1000 + ms;
}

// --- which fields break a rule ----------------------------------------------------------------------------------

// RFC 5322's atext, for a dot-atom local part; RFC 1035 labels, for the domain, with an alphabetic top-level label.
const ATEXT = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+";
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const PLAIN_MAILBOX = new RegExp(`^(${ATEXT}(?:\\.${ATEXT})*)@((?:${LABEL}\\.)+[A-Za-z]{2,63})$`);

/**
 * One plain ASCII mailbox, from the RFCs: dot-atom@domain, a local part of at most 64 and an address of at most 254
 * characters. (The parser also takes UTF-8 local parts and domains; the generators send only ASCII ones.)
 */
export function isPlainMailbox(value: unknown): boolean {
  if (typeof value !== 'string' || value.length > 254) return false;
  const match = PLAIN_MAILBOX.exec(value);
  return match !== null && match[1]!.length <= 64;
}

/**
 * The fields of a call of `type` that break a rule ('' is the call itself, when it is not an object). Empty means
 * the call is valid. Which one a parser names first is its own business; it must name one of these.
 */
export function callFaults(type: CallType, call: unknown): string[] {
  if (!isPlainObject(call)) return [''];
  const faults: string[] = [];
  for (const field of ['userId', 'anonymousId']) if (!isBlank(call[field]) && !isIdValue(call[field])) faults.push(field);
  // alias names the id the previous one becomes; every other call needs someone to belong to.
  if (type === 'alias' ? isBlank(call.userId) : isBlank(call.userId) && isBlank(call.anonymousId)) faults.push('userId');
  if (!isBlank(call.messageId) && typeof call.messageId !== 'string') faults.push('messageId');
  for (const field of ['timestamp', 'originalTimestamp', 'sentAt']) {
    const value = call[field];
    if (!isAbsent(value) && (typeof value !== 'string' || isoToMs(value) === undefined)) faults.push(field);
  }
  // properties are read by the calls that carry them; the others are checked on every call.
  const objectFields = ['traits', 'context', 'integrations', ...(type === 'track' || type === 'page' || type === 'screen' ? ['properties'] : [])];
  for (const field of objectFields) if (!isAbsent(call[field]) && !isPlainObject(call[field])) faults.push(field);
  if (type === 'track' && (typeof call.event !== 'string' || call.event.trim() === '')) faults.push('event');
  if (type === 'page' || type === 'screen') for (const field of ['name', 'category']) if (!isAbsent(call[field]) && typeof call[field] !== 'string') faults.push(field);
  if (type === 'group' && (isBlank(call.groupId) || !isIdValue(call.groupId))) faults.push('groupId');
  if (type === 'alias' && (isBlank(call.previousId) || !isIdValue(call.previousId))) faults.push('previousId');
  if (type === 'identify' && isPlainObject(call.traits) && !isBlank(call.traits.email) && !isPlainMailbox(call.traits.email)) faults.push('traits.email');
  return faults;
}

export interface BatchVerdict {
  /** Fields that make the whole batch refused (undefined: the body itself is not an object). */
  batchFaults: Array<string | undefined>;
  /** Per item, the JSON paths that get it rejected (`batch[2].event`, `batch[2]` for the item itself). */
  itemFaults: string[][];
}

/** What the batch rules say about a `/v1/batch` body: refused whole, or which items are rejected. */
export function batchVerdict(body: unknown): BatchVerdict {
  if (!isPlainObject(body)) return { batchFaults: [undefined], itemFaults: [] };
  const batchFaults: string[] = [];
  if (!Array.isArray(body.batch) || body.batch.length === 0) batchFaults.push('batch');
  for (const field of ['context', 'integrations']) if (!isAbsent(body[field]) && !isPlainObject(body[field])) batchFaults.push(field);
  if (!isAbsent(body.sentAt) && (typeof body.sentAt !== 'string' || isoToMs(body.sentAt) === undefined)) batchFaults.push('sentAt');
  const items: unknown[] = Array.isArray(body.batch) ? body.batch : [];
  const itemFaults = items.map((item, index) => {
    const at = `batch[${index}]`;
    if (!isPlainObject(item)) return [at];
    const faults: string[] = [];
    if (Buffer.byteLength(JSON.stringify(item)) > EVENT_LIMIT) faults.push(at);
    if (!CALL_TYPES.includes(item.type as CallType)) faults.push(`${at}.type`);
    else faults.push(...callFaults(item.type as CallType, item).map((field) => (field === '' ? at : `${at}.${field}`)));
    return faults;
  });
  return { batchFaults, itemFaults };
}

// --- the event a valid call becomes -----------------------------------------------------------------------------

export interface ExpectedEvent {
  messageId: string;
  type: CallType;
  customerId: string;
  userId: string | null;
  anonymousId: string | null;
  name: string | null;
  properties: Json;
  traits: Json;
  context: Json;
  timestamp: number;
  receivedAt: number;
}

/** What a batch hands every item: its context, integrations and sentAt (an item's own win). */
export interface BatchShared {
  context?: unknown;
  integrations?: unknown;
  sentAt?: unknown;
}

const idText = (value: unknown): string | null => (isBlank(value) ? null : String(value));
const objectOrEmpty = (value: unknown): Json => (isPlainObject(value) ? value : {});
const timeOf = (value: unknown): number | undefined => (typeof value === 'string' ? isoToMs(value) : undefined);

/**
 * The event's time (README "Time"): with sentAt, receivedAt − (sentAt − (originalTimestamp ?? timestamp)), but
 * never after receivedAt; a timestamp without sentAt, or beside an originalTimestamp, as sent; an
 * originalTimestamp without sentAt (a device clock of unknown skew), or no time at all, the arrival time.
 */
export function expectedTime(call: Json, receivedAt: number, batchSentAt?: unknown): number {
  const timestamp = timeOf(call.timestamp);
  const original = timeOf(call.originalTimestamp);
  const sentAt = timeOf(call.sentAt) ?? timeOf(batchSentAt);
  if (timestamp !== undefined && original !== undefined) return timestamp;
  const happened = original ?? timestamp;
  if (happened === undefined || (original !== undefined && sentAt === undefined)) return receivedAt;
  if (sentAt === undefined) return happened;
  return Math.min(receivedAt, receivedAt - (sentAt - happened));
}

/** The event a valid call of `type` becomes; `fallbackMessageId` stands in when the call has none. */
export function expectedEvent(type: CallType, call: Json, receivedAt: number, fallbackMessageId: string, shared: BatchShared = {}): ExpectedEvent {
  const userId = idText(call.userId);
  const anonymousId = idText(call.anonymousId);
  let name: string | null = null;
  let properties: Json = {};
  if (type === 'track') {
    name = call.event as string;
    properties = { ...objectOrEmpty(call.properties) };
  } else if (type === 'page' || type === 'screen') {
    name = typeof call.name === 'string' ? call.name : null;
    properties = { ...objectOrEmpty(call.properties) };
    // `category` is a page's own field in Segment's spec; one in properties wins.
    if (typeof call.category === 'string' && !Object.prototype.hasOwnProperty.call(properties, 'category')) properties.category = call.category;
  } else if (type === 'group') {
    properties = { groupId: String(call.groupId) };
  } else if (type === 'alias') {
    properties = { previousId: String(call.previousId) };
  }
  const context: Json = { ...objectOrEmpty(shared.context), ...objectOrEmpty(call.context) };
  const integrations = { ...objectOrEmpty(shared.integrations), ...objectOrEmpty(call.integrations) };
  if (Object.keys(integrations).length > 0) context.integrations = integrations;
  return {
    messageId: typeof call.messageId === 'string' && call.messageId !== '' ? call.messageId : fallbackMessageId,
    type,
    customerId: (userId ?? anonymousId)!,
    userId,
    anonymousId,
    name,
    properties,
    traits: type === 'identify' || type === 'group' ? { ...objectOrEmpty(call.traits) } : {},
    context,
    timestamp: expectedTime(call, receivedAt, shared.sentAt),
    receivedAt,
  };
}
