// The table shapes Kysely type-checks queries against; the migrations in migrations.ts create them.
import type { ColumnType, Generated } from 'kysely';

/** SQLite stores booleans as 0/1 (better-sqlite3 cannot bind booleans); PostgreSQL as boolean. */
export type DbBool = ColumnType<number | boolean, number | boolean, number | boolean>;

/** JSON documents are stored as text in both dialects, so one serialisation path serves both. */
type JsonText = string;

export interface EventsTable {
  id: Generated<number>;
  message_id: string;
  type: string;
  customer_id: string;
  user_id: string | null;
  anonymous_id: string | null;
  name: string | null;
  properties: JsonText;
  traits: JsonText;
  context: JsonText;
  timestamp: number;
  received_at: number;
  dispatched: DbBool;
}

export interface ProfilesTable {
  customer_id: string;
  email: string | null;
  timezone: string | null;
  traits: JsonText;
  computed: JsonText;
  consent: JsonText;
  tags: JsonText;
  updated_at: number;
  trait_times: JsonText;
}

/** alias_id (an anonymousId, an aliased previousId) belongs to customer_id. Kept flat: a merge repoints every alias. */
export interface IdentitiesTable {
  alias_id: string;
  customer_id: string;
  created_at: number;
}

export interface FlowVersionsTable {
  flow_id: string;
  version: number;
  sha256: string;
  source_file: string;
  definition: JsonText;
  registered_at: number;
}

export interface FlowEntriesTable {
  id: Generated<number>;
  workflow_id: string;
  customer_id: string;
  flow_id: string;
  flow_version: number;
  run_number: number;
  entered_at: number;
  ended_at: number | null;
  outcome: string | null;
  conversion_message_id: string | null;
  trigger_message_id: string | null;
}

export interface DecisionsTable {
  id: Generated<number>;
  key: string;
  customer_id: string;
  at: number;
  flow_id: string;
  flow_version: number | null;
  outcome: string;
  reason: string;
  event_message_id: string | null;
  workflow_id: string | null;
}

export interface SendsTable {
  delivery_key: string;
  customer_id: string;
  flow_id: string;
  flow_version: number;
  workflow_id: string;
  node_id: string;
  template: string;
  to_address: string;
  subject: string;
  status: string;
  transport: string;
  scheduled_at: number;
  sent_at: number | null;
  message_id: string | null;
  /** JSON: the template fallbacks the render used (core/template-helpers FallbackUse[]). */
  fallbacks: string;
}

export interface OutboxTable {
  id: Generated<number>;
  delivery_key: string;
  to_address: string;
  from_address: string;
  subject: string;
  html: string;
  text: string;
  headers: JsonText;
  created_at: number;
}

/** One product of the catalog (core/catalog.ts `Product`); related_ids is a JSON list of ids. */
export interface CatalogProductsTable {
  product_id: string;
  name: string;
  category: string;
  price: number;
  image_url: string | null;
  url: string;
  rating: number | null;
  review_count: number | null;
  /** null: stock is not tracked. */
  stock: number | null;
  related_ids: JsonText;
  updated_at: number;
}

/** One row (id 1): `version` goes up with every catalog change, so readers reload their index only when it moved. */
export interface CatalogStateTable {
  id: number;
  version: number;
}

/** A customer's membership of a segment (segments/<id>.yaml), since `entered_at`. */
export interface SegmentMembersTable {
  segment_id: string;
  customer_id: string;
  entered_at: number;
}

/**
 * When each customer's memberships must next be evaluated: set to the event's arrival by ingest (in the event's
 * transaction), and to the earliest moment a membership can change with time alone after an evaluation. null: not
 * before a new event. The sweep reads this index and touches no one else.
 */
export interface SegmentChecksTable {
  customer_id: string;
  next_check_at: number | null;
}

/** One row per segment the engine knows: its definition's hash (a change re-evaluates everyone) and evaluation times. */
export interface SegmentStateTable {
  segment_id: string;
  definition_hash: string;
  /** When this definition (this hash) was first loaded. */
  defined_at: number;
  /** The sweep time up to which every time-based change of this segment has been applied; null: never swept. */
  swept_at: number | null;
}

/** One row (id 1): the RFM quintile cut points (core/rfm RfmBoundaries, JSON) and when they were computed. */
export interface RfmStateTable {
  id: number;
  boundaries: JsonText;
  computed_at: number;
}

/** One API key (core/api-keys ApiKeyRecord): never the key text, only its SHA-256 digest. */
export interface ApiKeysTable {
  id: string;
  /** admin | server | client */
  kind: string;
  name: string;
  /** JSON list of admin scopes; empty for source keys. */
  scopes: JsonText;
  /** SHA-256 of the key text, hex: what a request's key is looked up by. */
  digest: string;
  hint: string;
  created_at: number;
  /** null: the key works. */
  revoked_at: number | null;
}

export interface Database {
  events: EventsTable;
  profiles: ProfilesTable;
  identities: IdentitiesTable;
  flow_versions: FlowVersionsTable;
  flow_entries: FlowEntriesTable;
  decisions: DecisionsTable;
  sends: SendsTable;
  outbox: OutboxTable;
  catalog_products: CatalogProductsTable;
  catalog_state: CatalogStateTable;
  segment_members: SegmentMembersTable;
  segment_checks: SegmentChecksTable;
  segment_state: SegmentStateTable;
  rfm_state: RfmStateTable;
  api_keys: ApiKeysTable;
}

/** The tables tableCounts() counts: every one that holds records (catalog_state is a single counter row). */
export const TABLES: ReadonlyArray<keyof Database> = ['events', 'profiles', 'identities', 'flow_versions', 'flow_entries', 'decisions', 'sends', 'outbox', 'catalog_products', 'segment_members', 'api_keys'];
