// What a client source key may not do. A client key is public (analytics.js puts it in every page), so whoever holds
// it can claim any id: it may report what a visitor does, but not speak for microflows (reserved event names), rewrite
// history (timestamps far from now), or act on a customer it cannot prove to be (merges, consent, email). Server keys
// and microflows' own events may do all of it. Pure: ingest calls checkClientEvent; the store, which alone knows who is
// identified, calls the rest inside the event's transaction.
import { ENGAGEMENT_EVENT_NAMES } from './esp-webhooks';
import { ForbiddenError } from './errors';
import type { NewEvent } from './event';
import { CONSENT_KINDS, type Profile } from './profile';
import { SEGMENT_ENTERED, SEGMENT_EXITED } from './segment-membership';
import { PREFERENCES_UPDATED } from './topic-consent';

/** The exact names of the events microflows itself records: engagement (tracking links, ESP webhooks, unsubscribes), preference center choices and segment changes. */
export const SYSTEM_EVENT_NAMES: readonly string[] = [...ENGAGEMENT_EVENT_NAMES, PREFERENCES_UPDATED, SEGMENT_ENTERED, SEGMENT_EXITED];

/** Track event names reserved whole: what microflows records that no prefix below covers. */
export const RESERVED_EVENT_NAMES: readonly string[] = ['Unsubscribed', PREFERENCES_UPDATED];
/**
 * Track event names reserved by prefix: `Segment …` (Segment Entered / Exited start and wait for flows) and `Email …`
 * (Delivered, Opened, Link Clicked, Bounced, Marked as Spam, and any later one), so a new system event under either
 * is reserved from the day it exists. Matched as written: triggers, segment rules and the profile fold compare event
 * names exactly (core/triggers eventMatches), so `email opened` fires nothing that `Email Opened` fires.
 */
export const RESERVED_EVENT_PREFIXES: readonly string[] = ['Segment ', 'Email '];

/** Whether a track event of this name may come only from microflows itself or a server key. */
export function isReservedEventName(name: string): boolean {
  return RESERVED_EVENT_NAMES.includes(name) || RESERVED_EVENT_PREFIXES.some((prefix) => name.startsWith(prefix));
}

/** Whether microflows itself records events of this exact name (so one of them says nothing about who the customer is). */
export function isSystemEventName(name: string | null): boolean {
  return name !== null && SYSTEM_EVENT_NAMES.includes(name);
}

function duration(ms: number): string {
  const minutes = Math.round(ms / 60_000);
  if (minutes < 120) return `${minutes} min`;
  const hours = Math.round(minutes / 60);
  return hours < 48 ? `${hours} h` : `${Math.round(hours / 24)} days`;
}

/**
 * Throws ForbiddenError (403), naming the field (`event`, `timestamp`; `batch[3].event` in a batch: `index` is the
 * position, null for a single call), when a client key may not send this call: a reserved event name, or a time
 * further than `maxSkewMs` from `now` (a client reports what happens now; history comes from a server key or an
 * import). Merges, consent and email are the store's to refuse: only it knows who is identified.
 */
export function checkClientEvent(event: NewEvent, index: number | null, options: { now: number; maxSkewMs: number }): void {
  const at = (field: string) => (index === null ? field : `batch[${index}].${field}`);
  if (event.type === 'track' && event.name !== null && isReservedEventName(event.name)) {
    throw new ForbiddenError(
      `"${event.name}" is reserved for events microflows records itself (${[...RESERVED_EVENT_PREFIXES.map((p) => `${p}…`), ...RESERVED_EVENT_NAMES].join(', ')}); a client key may not send it: use a server key, or another name`,
      at('event'),
    );
  }
  const skew = event.timestamp - options.now;
  if (Math.abs(skew) > options.maxSkewMs) {
    throw new ForbiddenError(
      `the event's time is ${duration(Math.abs(skew))} ${skew < 0 ? 'in the past' : 'in the future'}; a client key may send events at most ${duration(options.maxSkewMs)} from now: send history with a server key or \`microflows import\``,
      at('timestamp'),
    );
  }
}

/** Why the store refused an event, in the shape RecordEventResult.refused carries: the call's own field, and what to do. */
export interface Refusal {
  message: string;
  field: string;
}

/**
 * A client call that would merge a customer who is already identified (has a userId) into another: identify or any
 * call with `anonymousId` set to someone's id, or alias with their `previousId`. A browser cannot prove it is them.
 */
export function clientMergeRefusal(event: Pick<NewEvent, 'type'>): Refusal {
  const field = event.type === 'alias' ? 'previousId' : 'anonymousId';
  return {
    field,
    message: `names a customer who is already identified: a client key may join only an anonymous visitor to a user (a login); merging identified customers needs a server key`,
  };
}

/** The consent kinds an identify sets to granted (traits.consent.<kind>: true), where core/profile reads consent. */
export function consentGrants(event: Pick<NewEvent, 'type' | 'traits'>): string[] {
  if (event.type !== 'identify') return [];
  const consent = event.traits.consent;
  if (typeof consent !== 'object' || consent === null) return [];
  return CONSENT_KINDS.filter((kind) => (consent as Record<string, unknown>)[kind] === true);
}

/** The email an identify would store (core/profile keeps it lower-cased; null or "" clears it), or undefined when it sets none. */
function emailSet(event: Pick<NewEvent, 'type' | 'traits'>): string | null | undefined {
  if (event.type !== 'identify' || !('email' in event.traits)) return undefined;
  const value = event.traits.email;
  return typeof value === 'string' && value !== '' ? value.toLowerCase() : null;
}

/** Whether a client identify touches what protects an identified customer (their email, their consent): only then must the store look. */
export function touchesProtectedTraits(event: Pick<NewEvent, 'type' | 'traits'>): boolean {
  return emailSet(event) !== undefined || consentGrants(event).length > 0;
}

/**
 * What a client identify may not do to a customer who was identified before it (`stored`: their profile as stored):
 * - grant consent they have not granted (`identify { userId: victim, traits: { consent: { email_marketing: true } } }`
 *   would opt someone else in): a browser cannot prove it is them. Withdrawing consent is allowed (it only stops
 *   mail), and so is repeating a grant already on file (libraries resend traits).
 * - set, change or clear their email (`identify { userId: victim, traits: { email: attacker@x } }` would send their
 *   mail, links and cart to someone else). Repeating the stored address is allowed, in any case.
 * A new user (a userId not known before: sign-up) and an anonymous visitor are the client's own to describe.
 * Returns the first refusal, or undefined.
 */
export function clientProfileRefusal(event: Pick<NewEvent, 'type' | 'traits'>, stored: Pick<Profile, 'email' | 'consent'> | undefined): Refusal | undefined {
  const email = emailSet(event);
  if (email !== undefined && email !== (stored?.email ?? null)) {
    return {
      field: 'traits.email',
      message: `a client key may not set or change the email address of a customer who is already identified: send this identify with a server key`,
    };
  }
  for (const kind of consentGrants(event)) {
    if (stored?.consent[kind]?.granted !== true) {
      return {
        field: `traits.consent.${kind}`,
        message: `a client key may grant consent only for a new user or an anonymous visitor, not for a customer who is already identified: send this identify with a server key`,
      };
    }
  }
  return undefined;
}

/**
 * The part of an anonymous visitor's profile a client login may carry onto an identified customer: everything but
 * its email and consent grants. Otherwise a visitor who set `email: attacker@x` and `consent: true` on their own
 * anonymous id, then logged in as someone else (`identify { userId: victim, anonymousId }`, a login the client may
 * make), would set the victim's email and consent by merge. Consent withdrawals carry over (they only stop mail).
 */
export function loginMergeSource(anonymous: Profile): Profile {
  const { email: _email, ...traits } = anonymous.traits;
  const { email: _emailTime, ...traitTimes } = anonymous.traitTimes;
  const consent = Object.fromEntries(Object.entries(anonymous.consent).filter(([, record]) => !record.granted));
  return { ...anonymous, email: null, traits, traitTimes, consent };
}
