// The shape of a validated event, shared by ingest validation (core) and persistence (store).

export type EventType = 'track' | 'identify';

/** A validated event as the ingest path hands it to the store. Times are epoch ms. */
export interface NewEvent {
  messageId: string;
  type: EventType;
  /** userId ?? anonymousId: whose profile the event belongs to. */
  customerId: string;
  userId: string | null;
  anonymousId: string | null;
  /** track: the event name; identify: null */
  name: string | null;
  properties: Record<string, unknown>;
  traits: Record<string, unknown>;
  context: Record<string, unknown>;
  timestamp: number;
  receivedAt: number;
}
