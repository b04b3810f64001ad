// Topic consent: a customer's choice per flow topic lives in the profile's consent map as kind `topic:<id>` (absent
// means subscribed), set by the `Preferences Updated` event the preference center records. Kept free of imports:
// the profile fold (and so the workflow bundle) reads it.
import type { ConsentRecord, Profile } from './profile';

/** A topic id, as a flow's `topic:` and brand.yaml write it: kebab-case, like flow ids. */
export const TOPIC_ID = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

/** The system event the preference page records; reserved for microflows (core/source-policy). */
export const PREFERENCES_UPDATED = 'Preferences Updated';
/** The consent source of every change made on the page, as the consent trail shows it. */
export const PREFERENCE_CENTER_SOURCE = 'preference_center';

/** The consent kind that holds a topic's choice. */
export function topicConsentKind(topic: string): string {
  return `topic:${topic}`;
}

/** Whether the customer gets emails of `topic`: yes unless they turned it off (absent means subscribed). */
export function topicIsOn(profile: Pick<Profile, 'consent'> | undefined, topic: string): boolean {
  return profile?.consent[topicConsentKind(topic)]?.granted !== false;
}

/** The properties of a `Preferences Updated` event. */
export interface PreferencesUpdate {
  /** Topics whose choice changed: true turns one on, false off. */
  topics: Record<string, boolean>;
  /** Leave everything: email_marketing withdrawn. */
  unsubscribe_all?: boolean;
  /** A customer who had left asks for marketing emails again: email_marketing granted. */
  resubscribe?: boolean;
}

/**
 * The consent records a `Preferences Updated` event sets, as of the event's time. Properties are read defensively:
 * the event is stored like any other and only well-formed parts count.
 */
export function preferenceConsents(properties: Record<string, unknown>, at: number): Array<[kind: string, record: ConsentRecord]> {
  const records: Array<[string, ConsentRecord]> = [];
  const topics = properties.topics;
  if (topics && typeof topics === 'object' && !Array.isArray(topics)) {
    for (const [id, granted] of Object.entries(topics as Record<string, unknown>)) {
      if (TOPIC_ID.test(id) && typeof granted === 'boolean') records.push([topicConsentKind(id), { granted, source: PREFERENCE_CENTER_SOURCE, at }]);
    }
  }
  if (properties.unsubscribe_all === true) records.push(['email_marketing', { granted: false, source: PREFERENCE_CENTER_SOURCE, at }]);
  else if (properties.resubscribe === true) records.push(['email_marketing', { granted: true, source: PREFERENCE_CENTER_SOURCE, at }]);
  return records;
}
