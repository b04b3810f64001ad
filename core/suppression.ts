// The suppression list's rules (issue 14): which addresses get no email of any kind (hard bounce), no marketing
// (spam complaint, unsubscribe), or none for a while (repeated soft bounces). Pure: the store keeps the entries.
import crypto from 'node:crypto';
import { mailboxProblem } from './email-address';
import { BadInputError } from './errors';
import { parseIsoTimestamp } from './segment-spec';

/** What put an address on the list. */
export type SuppressionReason = 'hard_bounce' | 'complaint' | 'soft_bounce' | 'unsubscribe' | 'manual' | 'import' | 'erased';

/** all: no email of any kind; marketing: transactional email still goes. */
export type SuppressionScope = 'all' | 'marketing';

export interface SuppressionEntry {
  /** addressHash(address): the key, kept when the address itself is erased. */
  addressHash: string;
  /** null once the customer was erased: only the hash is kept. */
  address: string | null;
  reason: SuppressionReason;
  scope: SuppressionScope;
  source: string;
  /** epoch ms */
  createdAt: number;
  /** epoch ms; null: until removed. */
  expiresAt: number | null;
}

/** The list's key for an address: SHA-256 (hex) of the trimmed, lower-cased address. */
export function addressHash(address: string): string {
  return crypto.createHash('sha256').update(address.trim().toLowerCase()).digest('hex');
}

// ---------------------------------------------------------------------------------------------------
// What each reason means, and how an entry reads in the decision log.

export const SUPPRESSION_REASONS: readonly SuppressionReason[] = ['hard_bounce', 'complaint', 'soft_bounce', 'unsubscribe', 'manual', 'import', 'erased'];
export const SUPPRESSION_SCOPES: readonly SuppressionScope[] = ['all', 'marketing'];

/**
 * The scope an entry of each reason gets unless it says otherwise: a hard bounce, repeated soft bounces and an erasure
 * stop every email (the address is dead, or nobody may be mailed there); a complaint or an unsubscribe stops marketing
 * only, since order confirmations are owed to the customer whatever they think of the newsletter.
 */
export const DEFAULT_SCOPE: Readonly<Record<SuppressionReason, SuppressionScope>> = {
  hard_bounce: 'all',
  complaint: 'marketing',
  soft_bounce: 'all',
  unsubscribe: 'marketing',
  manual: 'all',
  import: 'all',
  erased: 'all',
};

const REASON_TEXT: Readonly<Record<SuppressionReason, string>> = {
  hard_bounce: 'hard bounce',
  complaint: 'spam complaint',
  soft_bounce: 'repeated soft bounces',
  unsubscribe: 'unsubscribed',
  manual: 'added by an operator',
  import: 'imported',
  erased: 'erased customer',
};

/** When several entries apply, the decision log names the one that says most about the address. */
const SEVERITY: readonly SuppressionReason[] = ['erased', 'hard_bounce', 'complaint', 'manual', 'import', 'soft_bounce', 'unsubscribe'];

/** Repeated soft bounces: `limit` of them within `windowMs` suppress the address for `suppressionMs`. */
export interface SoftBounceRules {
  limit: number;
  windowMs: number;
  suppressionMs: number;
}

const DAY_MS = 86_400_000;
export const DEFAULT_SOFT_BOUNCE_RULES: Readonly<SoftBounceRules> = { limit: 3, windowMs: 7 * DAY_MS, suppressionMs: 30 * DAY_MS };

/** Whether the entry holds at `now` (an expired soft-bounce entry is history, not a block). */
export function isActive(entry: Pick<SuppressionEntry, 'expiresAt'>, now: number): boolean {
  return entry.expiresAt === null || entry.expiresAt > now;
}

const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** `hard bounce (webhook, 2026-12-01)`; an expiring entry adds `until …`. */
export function describeEntry(entry: SuppressionEntry): string {
  const until = entry.expiresAt === null ? '' : `, until ${new Date(entry.expiresAt).toISOString()}`;
  return `${REASON_TEXT[entry.reason]} (${entry.source}, ${day(entry.createdAt)}${until})`;
}

function strongest(entries: SuppressionEntry[]): SuppressionEntry | undefined {
  return [...entries].sort((a, b) => SEVERITY.indexOf(a.reason) - SEVERITY.indexOf(b.reason) || a.createdAt - b.createdAt)[0];
}

export type TemplateCategory = 'marketing' | 'transactional';

/** What the list says about one send: blocked, with the reason for the decision log, or not. */
export type SendSuppression = { blocked: false } | { blocked: true; reason: string; entry: SuppressionEntry };

/**
 * Whether a send of a template of `category` to the address these entries are about is blocked at `now`: any active
 * entry of scope all blocks everything; one of scope marketing blocks marketing templates only.
 */
export function sendSuppression(entries: SuppressionEntry[], category: TemplateCategory, now: number): SendSuppression {
  const blocking = entries.filter((e) => isActive(e, now) && (e.scope === 'all' || category === 'marketing'));
  const entry = strongest(blocking);
  return entry ? { blocked: true, reason: `suppressed: ${describeEntry(entry)}`, entry } : { blocked: false };
}

/**
 * Whether a flow may start for an address with these entries at `now`: not under an entry of scope all, nor under one
 * of scope marketing when the flow sends no transactional template (it could send nothing). A flow that also sends
 * transactional email starts, and its marketing sends are stopped one by one at send time. Null: not blocked.
 */
export function entrySuppression(entries: SuppressionEntry[], flowSendsTransactional: boolean, now: number): { matched: false; reason: string } | null {
  const blocking = entries.filter((e) => isActive(e, now) && (e.scope === 'all' || !flowSendsTransactional));
  const entry = strongest(blocking);
  if (!entry) return null;
  const why = entry.scope === 'all' ? 'no email of any kind goes to this address' : 'the flow sends only marketing email';
  return { matched: false, reason: `suppressed: ${describeEntry(entry)}: ${why}` };
}

/**
 * The entry check with the list applied: an entry that matched but is suppressed does not match, and says why; one
 * that did not match keeps its own reason.
 */
export function suppressedEntry(check: { matched: boolean; reason: string }, entries: SuppressionEntry[], flowSendsTransactional: boolean, now: number): { matched: boolean; reason: string } {
  if (!check.matched) return check;
  return entrySuppression(entries, flowSendsTransactional, now) ?? check;
}

/**
 * Whether any send step of the flow uses a transactional template (`categoryOf` answers for a template name; one it
 * throws for, a template the library lacks, counts as not transactional: validation reports it, and its send fails).
 */
export function sendsTransactional(flow: { nodes: Record<string, { kind: string; template?: string }> }, categoryOf: (template: string) => TemplateCategory | undefined): boolean {
  const transactional = (template: string) => {
    try {
      return categoryOf(template) === 'transactional';
    } catch {
      return false;
    }
  };
  return Object.values(flow.nodes).some((node) => node.kind === 'send' && node.template !== undefined && transactional(node.template));
}

// ---------------------------------------------------------------------------------------------------
// Entries that recorded events make, derived in the events' own transaction (store/record-events.ts).

/** The part of a recorded event the derivation reads. */
export interface SuppressionEvent {
  type: string;
  name: string | null;
  properties: Record<string, unknown>;
  traits: Record<string, unknown>;
  context: Record<string, unknown>;
  /** epoch ms, the event's own time */
  timestamp: number;
  /** Who sent it (core/event EventOrigin); absent: microflows itself or an import. */
  origin?: string;
}

/** An unsubscribe entry to remove, if it was made no later than `upTo` (a grant older than the entry lifts nothing). */
export interface SuppressionLift {
  addressHash: string;
  reason: SuppressionReason;
  upTo: number;
}

export interface SuppressionChanges {
  entries: SuppressionEntry[];
  lifts: SuppressionLift[];
}

/** The consent record of core/profile, as far as this reads it. */
interface ConsentState {
  granted: boolean;
  source: string;
  at: number;
}

export const BOUNCED = 'Email Bounced';
export const COMPLAINED = 'Email Marked as Spam';
export const UNSUBSCRIBED = 'Unsubscribed';
/** cli/import's library name (core/import-mapping IMPORT_LIBRARY); kept here so the rules need not load the importer. */
const IMPORT_LIBRARY = 'microflows-import';
/** The consent sources that are the customer saying no to marketing (not an import, not a missing grant). */
const WITHDRAWALS = new Set(['unsubscribe', 'preference_center']);

function normalAddress(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const text = value.trim().toLowerCase();
  return /^[^@\s]+@[^@\s]+$/.test(text) ? text : null;
}

function record(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

/** The address an event is about: the recipient an ESP reported (properties.email), else the customer's email. */
export function eventAddress(event: Pick<SuppressionEvent, 'properties'>, profileEmail: string | null): string | null {
  return normalAddress(event.properties.email) ?? normalAddress(profileEmail);
}

function isImport(event: SuppressionEvent): boolean {
  return record(event.context.library).name === IMPORT_LIBRARY;
}

/** Where an event-made entry came from, for the list and the decision log. */
export function eventSource(event: SuppressionEvent): string {
  const source = event.context.source;
  if (typeof source === 'string' && source.endsWith('-webhook')) return 'webhook';
  if (source === 'unsubscribe-link') return 'unsubscribe_link';
  if (isImport(event)) return 'import';
  return 'ingest';
}

const isSoftBounce = (event: { name: string | null; properties: Record<string, unknown> }) => event.name === BOUNCED && event.properties.bounce_type === 'soft';

/**
 * The earliest moment a soft-bounce count for this batch looks back to (the earliest soft bounce in it minus the
 * window), or null when the batch holds none: the store reads the customer's bounces from then on.
 */
export function softBounceWindowStart(events: Array<Pick<SuppressionEvent, 'type' | 'name' | 'properties' | 'timestamp'>>, rules: SoftBounceRules): number | null {
  const times = events.filter((e) => e.type === 'track' && isSoftBounce(e)).map((e) => e.timestamp);
  return times.length === 0 ? null : Math.min(...times) - rules.windowMs;
}

function entry(address: string, reason: SuppressionReason, source: string, createdAt: number, expiresAt: number | null = null): SuppressionEntry {
  return { addressHash: addressHash(address), address, reason, scope: DEFAULT_SCOPE[reason], source, createdAt, expiresAt };
}

/**
 * What one customer's newly recorded events do to the list, given their profile after the fold:
 * - `Email Bounced` hard (or of no stated type, as email_status reads it) → hard_bounce, scope all;
 * - `Email Marked as Spam` → complaint, scope marketing;
 * - a soft bounce that makes `rules.limit` soft bounces to the address within `rules.windowMs` (counted among
 *   `softBounces`, the customer's stored bounces since softBounceWindowStart, this batch's included) → soft_bounce,
 *   scope all, until its own time plus `rules.suppressionMs`;
 * - `Unsubscribed`, or email_marketing consent withdrawn by an unsubscribe or the preference center in this batch →
 *   unsubscribe, scope marketing, unless a newer grant stands;
 * - email_marketing granted in this batch by a server key's identify (not an import) lifts the address's unsubscribe
 *   entry made up to then: that is how a customer resubscribes. Nothing here lifts a bounce or a complaint.
 * The address is the one the event names (an ESP's recipient), else the profile's email.
 */
export function suppressionChanges(input: {
  events: SuppressionEvent[];
  profile: { email: string | null; consent: Record<string, ConsentState> } | undefined;
  softBounces: Array<{ name: string; properties: Record<string, unknown>; timestamp: number }>;
  rules: SoftBounceRules;
}): SuppressionChanges {
  const { events, rules } = input;
  const profileEmail = input.profile?.email ?? null;
  const consent = input.profile?.consent.email_marketing;
  const entries = new Map<string, SuppressionEntry>();
  // One entry per address and reason: the latest event's wins, as the table keeps one row for the pair.
  const put = (made: SuppressionEntry) => {
    const key = `${made.addressHash}:${made.reason}`;
    const previous = entries.get(key);
    if (!previous || previous.createdAt <= made.createdAt) entries.set(key, made);
  };
  for (const event of events) {
    if (event.type !== 'track') continue;
    const address = eventAddress(event, profileEmail);
    if (address === null) continue;
    if (event.name === BOUNCED && event.properties.bounce_type !== 'soft') put(entry(address, 'hard_bounce', eventSource(event), event.timestamp));
    if (event.name === COMPLAINED) put(entry(address, 'complaint', eventSource(event), event.timestamp));
    if (event.name === UNSUBSCRIBED && !(consent?.granted === true && consent.at > event.timestamp)) put(entry(address, 'unsubscribe', eventSource(event), event.timestamp));
    if (isSoftBounce(event)) {
      const counted = input.softBounces.filter(
        (b) => isSoftBounce(b) && eventAddress(b, profileEmail) === address && b.timestamp <= event.timestamp && b.timestamp > event.timestamp - rules.windowMs,
      );
      if (counted.length >= rules.limit) put(entry(address, 'soft_bounce', eventSource(event), event.timestamp, event.timestamp + rules.suppressionMs));
    }
  }
  const changedNow = consent !== undefined && events.some((e) => e.timestamp === consent.at);
  const lifts: SuppressionLift[] = [];
  if (changedNow && profileEmail !== null && consent) {
    if (!consent.granted && WITHDRAWALS.has(consent.source)) {
      const hash = addressHash(profileEmail);
      if (!entries.has(`${hash}:unsubscribe`)) put(entry(profileEmail, 'unsubscribe', consent.source, consent.at));
    }
    const resubscribed = events.some(
      (e) => e.type === 'identify' && e.origin === 'server' && !isImport(e) && e.timestamp === consent.at && record(e.traits.consent).email_marketing === true,
    );
    if (consent.granted && resubscribed) {
      const hash = addressHash(profileEmail);
      lifts.push({ addressHash: hash, reason: 'unsubscribe', upTo: consent.at });
      entries.delete(`${hash}:unsubscribe`);
    }
  }
  return { entries: [...entries.values()], lifts };
}

// ---------------------------------------------------------------------------------------------------
// Entries given by an operator: the admin API, `microflows suppressions add|import`.

/** The fields an entry is given with (the CSV columns of `suppressions import|export`, the API's JSON keys). */
export const ENTRY_FIELDS = ['address', 'address_hash', 'reason', 'scope', 'source', 'created_at', 'expires_at'] as const;

export interface EntryDefaults {
  /** When the input names none: `manual` for the API and `add`, `import` for an import. */
  reason: SuppressionReason;
  source: string;
  now: number;
}

/** Thrown with the field at fault, as `path(field)` names it (`[2].reason`, `row 3 (line 4): reason`). */
export class InvalidSuppressionError extends BadInputError {
  override readonly code = 'invalid_suppression';
  override name = 'InvalidSuppressionError';
}

const HASH = /^[0-9a-f]{64}$/;

function timeOf(value: unknown, field: string, path: (field: string) => string): number | null {
  if (value === undefined || value === null || value === '') return null;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value;
  if (typeof value === 'string') {
    if (/^\d+$/.test(value)) return Number(value);
    const ms = parseIsoTimestamp(value);
    if (ms !== undefined) return ms;
  }
  throw new InvalidSuppressionError(`expected a time as ISO 8601 (2026-12-01T00:00:00Z) or epoch milliseconds, got ${JSON.stringify(value)}`, path(field));
}

function optionalText(value: unknown, field: string, path: (field: string) => string): string | null {
  if (value === undefined || value === null || value === '') return null;
  if (typeof value !== 'string') throw new InvalidSuppressionError(`expected a string, got ${JSON.stringify(value)}`, path(field));
  return value.trim() === '' ? null : value.trim();
}

/**
 * One operator-given entry, checked: an address (one plain mailbox) or its address_hash (64 hex digits, as an export
 * lists an erased customer's entry), both agreeing when both are given; a known reason and scope (the reason's usual
 * scope when absent); times as ISO 8601 or epoch ms, an expiry after the creation.
 */
export function entryFromInput(raw: unknown, defaults: EntryDefaults, path: (field: string) => string = (f) => f): SuppressionEntry {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new InvalidSuppressionError(`expected an object with ${ENTRY_FIELDS.join(', ')} (address or address_hash required), got ${raw === null ? 'null' : Array.isArray(raw) ? 'an array' : typeof raw}`, path('entry'));
  }
  const fields = raw as Record<string, unknown>;
  const unknown = Object.keys(fields).find((key) => !(ENTRY_FIELDS as readonly string[]).includes(key));
  if (unknown !== undefined) throw new InvalidSuppressionError(`unknown field: an entry has ${ENTRY_FIELDS.join(', ')}`, path(unknown));

  const givenAddress = optionalText(fields.address, 'address', path);
  const givenHash = optionalText(fields.address_hash, 'address_hash', path)?.toLowerCase() ?? null;
  if (givenAddress === null && givenHash === null) throw new InvalidSuppressionError('give the address to suppress (or its address_hash)', path('address'));
  let address: string | null = null;
  if (givenAddress !== null) {
    const problem = mailboxProblem(givenAddress);
    if (problem !== undefined) throw new InvalidSuppressionError(problem, path('address'));
    address = givenAddress.toLowerCase();
  }
  if (givenHash !== null && !HASH.test(givenHash)) throw new InvalidSuppressionError('expected the SHA-256 of the lower-cased address, 64 hex digits', path('address_hash'));
  const hash = address === null ? givenHash! : addressHash(address);
  if (givenHash !== null && givenHash !== hash) throw new InvalidSuppressionError('is not the SHA-256 of the address given beside it: give one or the other', path('address_hash'));

  const reason = optionalText(fields.reason, 'reason', path) ?? defaults.reason;
  if (!(SUPPRESSION_REASONS as readonly string[]).includes(reason)) {
    throw new InvalidSuppressionError(`unknown reason ${JSON.stringify(reason)}: one of ${SUPPRESSION_REASONS.join(', ')}`, path('reason'));
  }
  const scope = optionalText(fields.scope, 'scope', path) ?? DEFAULT_SCOPE[reason as SuppressionReason];
  if (!(SUPPRESSION_SCOPES as readonly string[]).includes(scope)) {
    throw new InvalidSuppressionError(`unknown scope ${JSON.stringify(scope)}: all (no email of any kind) or marketing (transactional email still goes)`, path('scope'));
  }
  const createdAt = timeOf(fields.created_at, 'created_at', path) ?? defaults.now;
  const expiresAt = timeOf(fields.expires_at, 'expires_at', path);
  if (expiresAt !== null && expiresAt <= createdAt) throw new InvalidSuppressionError('must be after created_at (leave it empty for "until removed")', path('expires_at'));
  return {
    addressHash: hash,
    address,
    reason: reason as SuppressionReason,
    scope: scope as SuppressionScope,
    source: optionalText(fields.source, 'source', path) ?? defaults.source,
    createdAt,
    expiresAt,
  };
}

/** What `suppressions remove` and DELETE /api/suppressions/:address are given: an address, or an entry's hash as listed. */
export function hashOfAddressOrHash(given: string): string {
  const text = given.trim().toLowerCase();
  return HASH.test(text) ? text : addressHash(text);
}
