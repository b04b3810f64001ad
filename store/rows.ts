// Row ↔ domain conversions shared by the Kysely store and the SQLite ingest path: JSON columns are text on
// both backends, booleans are 0/1 on SQLite.
import type { Selectable } from 'kysely';
import type { EventType } from '../core/event';
import type { Profile, ProfileEvent } from '../core/profile';
import type { FallbackUse } from '../core/template-helpers';
import type { DecisionsTable, EventsTable, FlowEntriesTable, OutboxTable, ProfilesTable, SendsTable } from './schema';
import type { DecisionRecord, FlowEntry, OutboxMessage, RecordedSegmentChange, SendRecord, StoredEvent } from './store';
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

export function toFlowEntry(row: Selectable<FlowEntriesTable>): FlowEntry {
  return {
    customerId: row.customer_id,
    flowId: row.flow_id,
    flowVersion: row.flow_version,
    runNumber: row.run_number,
    workflowId: row.workflow_id,
    enteredAt: row.entered_at,
    endedAt: row.ended_at,
    outcome: row.outcome,
    conversionMessageId: row.conversion_message_id,
    triggerMessageId: row.trigger_message_id,
    // Only holdout runs say so: entries read before holdouts existed keep their shape.
    ...(row.holdout === true || row.holdout === 1 ? { holdout: true } : {}),
  };
}

export function toDecision(row: Selectable<DecisionsTable>): DecisionRecord {
  return {
    key: row.key,
    customerId: row.customer_id,
    at: row.at,
    flowId: row.flow_id,
    flowVersion: row.flow_version,
    outcome: row.outcome,
    reason: row.reason,
    eventMessageId: row.event_message_id,
    workflowId: row.workflow_id,
  };
}

export function toSend(row: Selectable<SendsTable>): SendRecord {
  return {
    deliveryKey: row.delivery_key,
    customerId: row.customer_id,
    flowId: row.flow_id,
    flowVersion: row.flow_version,
    workflowId: row.workflow_id,
    nodeId: row.node_id,
    template: row.template,
    to: row.to_address,
    subject: row.subject,
    status: row.status as SendRecord['status'],
    transport: row.transport as SendRecord['transport'],
    scheduledAt: row.scheduled_at,
    sentAt: row.sent_at,
    messageId: row.message_id,
    fallbacks: parseJson(row.fallbacks ?? '[]') as unknown as FallbackUse[],
    ...(row.experiment_id !== null && row.experiment_id !== undefined && row.variant !== null && row.variant !== undefined ? { experimentId: row.experiment_id, variant: row.variant } : {}),
  };
}

export function toOutboxMessage(row: Selectable<OutboxTable>): OutboxMessage {
  return {
    deliveryKey: row.delivery_key,
    to: row.to_address,
    from: row.from_address,
    subject: row.subject,
    html: row.html,
    text: row.text,
    headers: parseJson(row.headers),
    createdAt: row.created_at,
  };
}
