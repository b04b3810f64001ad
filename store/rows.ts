// Row ↔ domain conversions shared by the Kysely store and the SQLite ingest path: JSON columns are text on
// both backends, booleans are 0/1 on SQLite.
import type { Selectable } from 'kysely';
import type { EventType } from '../core/event';
import type { Profile, ProfileEvent } from '../core/profile';
import type { EventsTable, ProfilesTable } from './schema';
import type { RecordedSegmentChange, StoredEvent } from './store';
import { SEGMENT_ENTERED, SEGMENT_EXITED } from '../core/segment-membership';

/** The names of the engine's own segment-change events, which segment history reads apart from the customer's events. */
export const SEGMENT_CHANGE_NAMES = [SEGMENT_ENTERED, SEGMENT_EXITED];

/** An events row as the profile fold reads it. */
export function toProfileEvent(row: { type: string; name: string | null; properties: string; traits: string; timestamp: number | string }): ProfileEvent {
  return { type: row.type as EventType, name: row.name, properties: parseJson(row.properties), traits: parseJson(row.traits), timestamp: Number(row.timestamp) };
}

/** A recorded Segment Entered / Exited event row as a change. */
export function toRecordedSegmentChange(row: { message_id: string; name: string | null; properties: string; timestamp: number | string }): RecordedSegmentChange {
  return {
    messageId: row.message_id,
    segmentId: String(parseJson<{ segment_id?: unknown }>(row.properties).segment_id ?? ''),
    change: row.name === SEGMENT_ENTERED ? 'entered' : 'exited',
    at: Number(row.timestamp),
  };
}

export function parseJson<T>(text: string): T {
  return JSON.parse(text) as T;
}

export function toStoredEvent(row: Selectable<EventsTable>): StoredEvent {
  return {
    id: row.id,
    messageId: row.message_id,
    type: row.type as StoredEvent['type'],
    customerId: row.customer_id,
    userId: row.user_id,
    anonymousId: row.anonymous_id,
    name: row.name,
    properties: parseJson(row.properties),
    traits: parseJson(row.traits),
    context: parseJson(row.context),
    timestamp: row.timestamp,
    receivedAt: row.received_at,
    dispatched: Boolean(row.dispatched),
  };
}

export function toProfile(row: Selectable<ProfilesTable>): Profile {
  return {
    customerId: row.customer_id,
    email: row.email,
    timezone: row.timezone,
    traits: parseJson(row.traits),
    traitTimes: parseJson(row.trait_times),
    computed: parseJson(row.computed),
    consent: parseJson(row.consent),
    tags: parseJson(row.tags),
    updatedAt: row.updated_at,
  };
}

export function profileRow(profile: Profile): ProfilesTable {
  return {
    customer_id: profile.customerId,
    email: profile.email,
    timezone: profile.timezone,
    traits: JSON.stringify(profile.traits),
    computed: JSON.stringify(profile.computed),
    consent: JSON.stringify(profile.consent),
    tags: JSON.stringify(profile.tags),
    updated_at: profile.updatedAt,
    trait_times: JSON.stringify(profile.traitTimes),
  };
}
