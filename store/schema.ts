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
  /**
   * The computed fields the customer's purged events folded into (store/retention-store.ts), the start of a refold;
   * null: none purged. Optional here because only the purge writes it: the profile writers leave it as it is.
   */
  computed_base?: JsonText | null;
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
  /** In the flow's holdout (migration 0012): entered, sent nothing. */
  holdout: Generated<number | boolean>;
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
  /** What the send counts as under frequency caps (migration 0011); null on rows sent before it. */
  flow_group: string | null;
  topic: string | null;
  /** marketing | transactional */
  category: string | null;
  /** The experiment and variant whose branch the send step is in (migration 0012); null outside experiments. */
  experiment_id: string | null;
  variant: string | null;
}

/** A customer's variant in an experiment, fixed at their first assignment (core/experiment-assignment). */
export interface ExperimentAssignmentsTable {
  experiment_id: string;
  customer_id: string;
  variant: string;
  assigned_at: number;
  flow_id: string;
  flow_version: number;
  step_id: string;
  workflow_id: string;
}

/** An experiment's state: running, decided (winner) or inconclusive, with the figures and reason of the decision. */
export interface ExperimentsTable {
  experiment_id: string;
  flow_id: string;
  step_id: string;
  started_at: number;
  state: string;
  winner: string | null;
  decided_at: number | null;
  reason: string | null;
  /** JSON: the statistics the decision rested on */
  figures: string | null;
  /** JSON: the sequential test's state between checks (core/experiment-stats ExperimentEvidence) */
  evidence: string | null;
}

/** Report counters: per flow, version, step ('' for the flow), variant ('' outside experiments) and UTC day. */
export interface FlowMetricsTable {
  flow_id: string;
  flow_version: number;
  step_id: string;
  variant: string;
  metric: string;
  /** days since 1970-01-01 (UTC) of the send, or of the entry for flow-level metrics */
  day: number;
  count: number;
  /** revenue summed (converted), for means with intervals */
  amount: number;
  amount_squares: number;
}

/** What a send's engagement has already counted (one unique open, click, bounce, ... per send). */
export interface SendEventsTable {
  delivery_key: string;
  kind: string;
  at: number;
}

/** A goal event credited to a flow (and, when a send earned it, that send): at most once per event and flow. */
export interface ConversionsTable {
  event_message_id: string;
  flow_id: string;
  customer_id: string;
  workflow_id: string | null;
  delivery_key: string | null;
  at: number;
  revenue: number;
}

/** The metrics fold's place in the events table (one row, id 1). */
export interface MetricsStateTable {
  id: number;
  /** the last event id folded */
  event_cursor: number;
  updated_at: number;
  /** PostgreSQL: every event up to this id is committed or gone, so the fold may pass it (store/metrics-store) */
  settled_through: Generated<number>;
  /** PostgreSQL: the newest event id at the last fold, settled once the transactions writing events then have ended */
  pending_through: Generated<number>;
  /** PostgreSQL: those transactions (pg_locks virtualtransaction), comma-separated */
  pending_writers: Generated<string>;
}

/** A send a frequency cap deferred: it retries at `until`; a freed slot goes to the highest priority waiting. */
export interface SendWaitsTable {
  delivery_key: string;
  customer_id: string;
  workflow_id: string;
  flow_id: string;
  priority: number;
  /** when the send was first due (flow time, epoch ms) */
  due_at: number;
  until: number;
  flow_group: string;
  topic: string | null;
  category: string;
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

/**
 * One suppressed address (core/suppression): `scope` all (hard bounce: no email of any kind) or marketing (complaint,
 * unsubscribe); `expires_at` null: until removed. Keyed by the SHA-256 of the lower-cased address, so erasure can
 * clear `address` and keep the hash: a re-import of the address stays suppressed.
 */
export interface SuppressionsTable {
  address_hash: string;
  /** hard_bounce | complaint | soft_bounce | unsubscribe | manual | import | erased */
  reason: string;
  /** null once the customer was erased: only the hash is kept. */
  address: string | null;
  /** all | marketing */
  scope: string;
  /** Where it came from: webhook, api, cli, import, preference_center, erasure, ingest. */
  source: string;
  created_at: number;
  expires_at: number | null;
}

/** The consent trail: every change of a customer's consent (a kind: email_marketing, behavioral_tracking, topic:<id>). */
export interface ConsentChangesTable {
  id: Generated<number>;
  customer_id: string;
  kind: string;
  granted: DbBool;
  /** identify (API), unsubscribe, preference_center, import, admin */
  source: string;
  /** The change's own time (its event's), epoch ms. */
  at: number;
  recorded_at: number;
  event_message_id: string | null;
}

/** A customer's data key for the Temporal payload codec, wrapped (AES-256-GCM) by the master key `master_key_id`. */
export interface DataKeysTable {
  /** The pseudonymous subject (keyed hash of the customer id), never the id itself. */
  subject: string;
  wrapped_key: string;
  master_key_id: string;
  created_at: number;
}

/** One erasure, logged without personal data: a random id, when, which admin key asked, and row counts removed (JSON). */
export interface ErasuresTable {
  id: string;
  at: number;
  requested_by: string;
  removed: JsonText;
}

/**
 * One offer code of a pool (migration 0013): unclaimed while claimed_at is null; a send claims it under its delivery
 * key (unique per pool, so a retried send gets the same code). Erasure clears customer_id and delivery_key and keeps
 * claimed_at: the code is never handed out again.
 */
export interface OfferCodesTable {
  id: Generated<number>;
  pool: string;
  code: string;
  imported_at: number;
  customer_id: string | null;
  delivery_key: string | null;
  claimed_at: number | null;
}

/** Each pool's figures (migration 0013), kept by the transactions that import, claim and release its codes. */
export interface OfferCodePoolsTable {
  pool: string;
  total: number;
  claimed: number;
}

export interface Database {
  events: EventsTable;
  profiles: ProfilesTable;
  identities: IdentitiesTable;
  flow_versions: FlowVersionsTable;
  flow_entries: FlowEntriesTable;
  decisions: DecisionsTable;
  sends: SendsTable;
  send_waits: SendWaitsTable;
  experiment_assignments: ExperimentAssignmentsTable;
  experiments: ExperimentsTable;
  flow_metrics: FlowMetricsTable;
  send_events: SendEventsTable;
  conversions: ConversionsTable;
  metrics_state: MetricsStateTable;
  outbox: OutboxTable;
  catalog_products: CatalogProductsTable;
  catalog_state: CatalogStateTable;
  segment_members: SegmentMembersTable;
  segment_checks: SegmentChecksTable;
  segment_state: SegmentStateTable;
  rfm_state: RfmStateTable;
  api_keys: ApiKeysTable;
  suppressions: SuppressionsTable;
  consent_changes: ConsentChangesTable;
  data_keys: DataKeysTable;
  erasures: ErasuresTable;
  offer_codes: OfferCodesTable;
  offer_code_pools: OfferCodePoolsTable;
}

/** The tables tableCounts() counts: every one that holds records (catalog_state is a single counter row). */
export const TABLES: ReadonlyArray<keyof Database> = ['events', 'profiles', 'identities', 'flow_versions', 'flow_entries', 'decisions', 'sends', 'send_waits', 'experiment_assignments', 'experiments', 'flow_metrics', 'send_events', 'conversions', 'outbox', 'catalog_products', 'segment_members', 'api_keys', 'suppressions', 'consent_changes', 'data_keys', 'erasures', 'offer_codes'];
