// The shape of a validated event, shared by ingest validation (core) and persistence (store).

/** The Segment call types. `alias` carries `previousId` in properties; `group` carries `groupId` in properties. */
export type EventType = 'track' | 'identify' | 'page' | 'screen' | 'group' | 'alias';

/** A validated event as the ingest path hands it to the store. Times are epoch ms. */
export interface NewEvent {
  messageId: string;
  type: EventType;
  /** userId ?? anonymousId: whose profile the event belongs to. */
  customerId: string;
  userId: string | null;
  anonymousId: string | null;
  /** track: the event name; page/screen: the page or screen name (or null); identify, group, alias: null */
  name: string | null;
  properties: Record<string, unknown>;
  traits: Record<string, unknown>;
  context: Record<string, unknown>;
  timestamp: number;
  receivedAt: number;
  /**
   * Who sent it, for what the store may refuse (core/source-policy): `client` a browser-safe source key, `server` a
   * trusted one, `internal` (or absent) microflows itself and imports. Not stored: it decides what the call may do.
   */
  origin?: EventOrigin;
}

export type EventOrigin = 'client' | 'server' | 'internal';
