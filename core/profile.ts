// A customer's profile: traits and consent (merged field by field, newest event time wins, so arrival order
// does not matter), the computed fields of core/behavior, and manual tags. Pure: the store calls these inside
// the event's transaction.
import { behaviorView, foldBehaviorInto, type CartItem, type Computed } from './behavior';
import type { EventType } from './event';
import { PREFERENCES_UPDATED, preferenceConsents } from './topic-consent';

export type { CartItem } from './behavior';

export interface ConsentRecord {
  granted: boolean;
  source: string;
  /** epoch ms */
  at: number;
}

export interface Profile {
  customerId: string;
  email: string | null;
  timezone: string | null;
  traits: Record<string, unknown>;
  /** When each trait (and `email`, `timezone`) was last set, epoch ms of the event that set it. */
  traitTimes: Record<string, number>;
  /** Fields computed from events (core/behavior); read them through `profileContext`, which adds the time-relative ones. */
  computed: Computed;
  consent: Record<string, ConsentRecord>;
  /** Tags set by flows (update_profile) or the API; behavioral tags are computed, see core/behavior. */
  tags: string[];
  /** epoch ms */
  updatedAt: number;
  /** The segments the customer is in, when the reader asked the store for them (not a stored profile column). */
  segments?: string[];
}

/** The part of an ingested event the profile fold needs. */
export interface ProfileEvent {
  type: EventType;
  name: string | null;
  properties: Record<string, unknown>;
  traits: Record<string, unknown>;
  /** epoch ms, the event's own (corrected) time */
  timestamp: number;
  /** The call's context, when the caller has it: an import's calls say so there, and their consent's source is `import`. */
  context?: Record<string, unknown>;
}

export function emptyProfile(customerId: string, now: number): Profile {
  return { customerId, email: null, timezone: null, traits: {}, traitTimes: {}, computed: {}, consent: {}, tags: [], updatedAt: now };
}

export const CONSENT_KINDS = ['email_marketing', 'behavioral_tracking'] as const;

function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function asString(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : typeof value === 'number' && Number.isFinite(value) ? String(value) : undefined;
}

/** Sets a trait unless a newer event already set it (equal times: the later arrival wins). */
function setTrait(profile: Profile, key: string, value: unknown, at: number): void {
  const previous = profile.traitTimes[key];
  if (previous !== undefined && previous > at) return;
  profile.traitTimes[key] = at;
  // Stored lower-cased so webhooks and imports find the customer whatever case their source used.
  if (key === 'email') profile.email = asString(value)?.toLowerCase() ?? null;
  else if (key === 'timezone') profile.timezone = asString(value) ?? null;
  profile.traits[key] = value;
}

function setConsent(profile: Profile, kind: string, record: ConsentRecord): void {
  const previous = profile.consent[kind];
  if (previous && previous.at > record.at) return;
  profile.consent[kind] = record;
}

function applyIdentify(profile: Profile, event: ProfileEvent): void {
  const { consent, ...traits } = event.traits;
  for (const [key, value] of Object.entries(traits)) setTrait(profile, key, value, event.timestamp);
  if (consent && typeof consent === 'object') {
    for (const kind of CONSENT_KINDS) {
      const granted = (consent as Record<string, unknown>)[kind];
      if (typeof granted === 'boolean') setConsent(profile, kind, { granted, source: identifySource(event), at: event.timestamp });
    }
  }
}

/** Where an identify's consent came from, for the consent trail: `microflows import` (whose calls name their library, core/import-mapping IMPORT_LIBRARY) or the API. */
function identifySource(event: ProfileEvent): string {
  const library = event.context?.library;
  return library && typeof library === 'object' && (library as { name?: unknown }).name === 'microflows-import' ? 'import' : 'identify';
}

/**
 * Returns a new profile with the event applied; the input is not modified. The computed fields assume time order:
 * when `needsRefold(profile.computed, event)` the caller refolds them instead (see core/behavior).
 */
export function applyEventToProfile(profile: Profile, event: ProfileEvent, now: number): Profile {
  return applyEventsToProfile(profile, [{ event, now }]);
}

/** applyEventToProfile for several events in order, copying the profile once (the ingest path folds batches). */
export function applyEventsToProfile(profile: Profile, events: Array<{ event: ProfileEvent; now: number }>): Profile {
  const next = clone(profile);
  applyEventsInPlace(next, events);
  return next;
}

/**
 * applyEventsToProfile without the copy, for a caller that owns `profile` outright (the store, on a profile it
 * has just read from its row): the copy is a JSON round trip of the whole profile, on the hot ingest path.
 */
export function applyEventsInPlace(profile: Profile, events: Array<{ event: ProfileEvent; now: number }>): void {
  const next = profile;
  for (const { event, now } of events) {
    if (event.type === 'identify') applyIdentify(next, event);
    if (event.type === 'track' && event.name === 'Unsubscribed') {
      setConsent(next, 'email_marketing', { granted: false, source: 'unsubscribe', at: event.timestamp });
    }
    if (event.type === 'track' && event.name === PREFERENCES_UPDATED) {
      for (const [kind, record] of preferenceConsents(event.properties, event.timestamp)) setConsent(next, kind, record);
    }
    foldBehaviorInto(next.computed, event);
    next.updatedAt = now;
  }
}

/**
 * Joins the profile of an identity that turned out to be `into`'s (an anonymous visitor who logged in, an alias):
 * traits and consent by newest time, tags united. The computed fields are left to the caller, who refolds the
 * merged events.
 */
export function mergeProfiles(into: Profile, from: Profile, now: number): Profile {
  const next = clone(into);
  for (const [key, value] of Object.entries(from.traits)) setTrait(next, key, value, from.traitTimes[key] ?? 0);
  if (next.email === null && from.email !== null) next.email = from.email;
  if (next.timezone === null && from.timezone !== null) next.timezone = from.timezone;
  for (const [kind, record] of Object.entries(from.consent)) setConsent(next, kind, record);
  next.tags = [...new Set([...next.tags, ...from.tags])].sort();
  next.updatedAt = now;
  return next;
}

/** Applies an `update_profile` step: set fields (into traits), add and remove tags. */
export function applyProfileUpdate(
  profile: Profile,
  update: { set: Record<string, unknown>; addTags: string[]; removeTags: string[] },
  now: number,
): Profile {
  const next = clone(profile);
  for (const [key, value] of Object.entries(update.set)) setTrait(next, key, value, now);
  const tags = new Set(next.tags);
  update.addTags.forEach((t) => tags.add(t));
  update.removeTags.forEach((t) => tags.delete(t));
  next.tags = [...tags].sort();
  next.updatedAt = now;
  return next;
}

/**
 * The `profile.*` and `consent.*` view that conditions and templates read, as of `now` (decayed behavior_score,
 * 30-day engagement counts, behavioral tags). `tags` holds manual and behavioral tags together.
 */
export function profileContext(profile: Profile | undefined, now: number): { profile: Record<string, unknown>; consent: Record<string, boolean> } {
  if (!profile) return { profile: {}, consent: {} };
  const consent: Record<string, boolean> = {};
  for (const [kind, record] of Object.entries(profile.consent)) consent[kind] = record.granted;
  const computed = behaviorView(profile.computed, now);
  return {
    profile: {
      ...profile.traits,
      ...computed,
      customer_id: profile.customerId,
      email: profile.email,
      timezone: profile.timezone,
      tags: [...new Set([...profile.tags, ...(computed.behavioral_tags as string[])])].sort(),
      segments: profile.segments ?? [],
    },
    consent,
  };
}

/** Items of the cart, typed, for templates and activities. */
export function cartOf(profile: Profile | undefined): CartItem[] {
  return (profile?.computed.cart as CartItem[] | undefined) ?? [];
}
