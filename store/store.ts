// The persistence contract: one interface, implemented once over Kysely for SQLite (default) and
// PostgreSQL (DATABASE_URL). Every method is atomic; ids and keys make retries harmless.
import type { FallbackUse } from '../core/template-helpers';
import type { ApiKeyRecord } from '../core/api-keys';
import type { DataKeyRecord } from './data-keys-store';
import type { Product } from '../core/catalog';
import type { FlowDefinition } from '../core/flow-types';
import type { NewEvent } from '../core/event';
import type { Profile, ProfileEvent } from '../core/profile';
import type { Computed } from '../core/behavior';
import type { PurgePage } from './retention-store';
import type { RfmBoundaries, RfmInput } from '../core/rfm';
import type { EntryDefaults, SuppressionEntry, SuppressionReason, TemplateCategory } from '../core/suppression';
import type { SlotVerdict, WaitingSlot } from '../core/send-slot';
import type { EngagementRow } from './engagement-store';
import type { concludeExperiment as concludeExperimentRow, ExperimentAssignment, ExperimentRecord } from './experiments-store';
import type { SuppressionPage } from './suppressions-store';
import type { MetricRow, MetricsFold, MetricsQuery } from './metrics-store';
import type { ConsentChange } from '../core/tracking-consent';
import type { CustomerExport, EraseOptions, ErasureRecord, ErasureResult } from './customer-data-store';
import type { AuditRows } from '../core/audit';
import type { OfferPoolStats } from '../core/offer-codes';
import type { OfferCodeClaim, OfferCodeClaimRequest, OfferCodeImport } from './offer-codes-store';

// Defined in core so ingest validation (core/segment-spec) can build them without importing store/.
export type { EventType, NewEvent } from '../core/event';

export interface StoredEvent extends NewEvent {
  /** Monotonic per store: orders events by arrival. */
  id: number;
  /** false while a trigger/exit dispatch to Temporal is owed for this event. */
  dispatched: boolean;
}

export interface RecordEventResult {
  /** true when an event with this messageId was already stored: nothing was written. */
  duplicate: boolean;
  event: StoredEvent;
  /** The customer's profile after this event (or as it is, for a duplicate). */
  profile: Profile;
  /**
   * The store refused the event because of its `origin` (a client key merging an identified customer, granting their
   * consent, changing their email): nothing of it was written; `event` is as sent (id 0, nothing to dispatch) and
   * `profile` as stored. `field` is the call's own path (`anonymousId`, `traits.email`); a batch prefixes `batch[i].`.
   */
  refused?: { message: string; field: string };
  /**
   * The customer's choice, not a client error: a behavioral event (core/tracking-consent) of a customer whose
   * behavioral tracking is off was not stored, folded or dispatched. `event` is as sent (id 0), `profile` as stored.
   */
  dropped?: { reason: string };
}

/** Which of a customer's events segment rules read: an event name, from `since` on (null: all of them). */
export interface SegmentEventRead {
  name: string;
  since: number | null;
}

/** What a segment evaluation asks the store to read about one customer, given their stored next check. */
export interface SegmentReadPlan {
  /** The events of these names the rules read. */
  events: SegmentEventRead[];
  /** The replay's start: the changes recorded and the customer's event times from this moment on are read. */
  from: number;
  /** Read every event the profile fold reads, when an event is later than `from` (a profile rule must see the past). */
  profileHistory: boolean;
}

/** A Segment Entered / Exited event as recorded. */
export interface RecordedSegmentChange {
  messageId: string;
  segmentId: string;
  change: 'entered' | 'exited';
  at: number;
}

/** What a segment evaluation reads about one customer, inside its transaction. */
export interface SegmentFactsRead {
  profile: Profile | undefined;
  /** The customer's track events of the names asked for, any order. */
  events: Array<{ name: string; properties: Record<string, unknown>; timestamp: number }>;
  /** segment id → entered_at, as stored now */
  members: Map<string, number>;
  /** The stored next check (the moment a time-based change was expected, or the own time of the earliest event
   *  not evaluated yet); null: none was scheduled. */
  dueAt: number | null;
  /** The changes recorded at or after the plan's `from`, oldest first. */
  recorded: RecordedSegmentChange[];
  /** The own times of the customer's other events at or after the plan's `from`, any order. */
  eventTimes: number[];
  /** Every event the profile fold reads, any order: when the plan asked for them and an event is later than `from`. */
  profileEvents?: ProfileEvent[];
  /** With profileEvents: what the customer's purged events folded into (event retention), the fold's start. */
  computedBase?: Computed | null;
}

/** What an evaluation decided: the full membership now, when to look again, and the events that record the change. */
export interface SegmentDecision {
  members: ReadonlySet<string>;
  /** When each entered segment was (last) entered, also for a member whose entry a late event moved; `at` for a new member not listed. */
  enteredAt?: ReadonlyMap<string, number>;
  /** messageIds of recorded change events that a late event undid: deleted in the same transaction. */
  retract?: string[];
  /** Where the replay began: a member with no entry in `enteredAt` entered before it (the store reads when). */
  replayedFrom?: number;
  at: number;
  nextCheckAt: number | null;
  /** `Segment Entered` / `Segment Exited` events, recorded in the same transaction as the membership change. */
  events: NewEvent[];
}

export interface SegmentUpdate {
  customerId: string;
  entered: string[];
  exited: string[];
  /** The recording of the decision's events (dispatch the fresh ones after this resolves). */
  recorded: RecordEventResult[];
}

export interface SegmentStateRecord {
  segmentId: string;
  definitionHash: string;
  definedAt: number;
  sweptAt: number | null;
}

export interface FlowEntry {
  customerId: string;
  flowId: string;
  flowVersion: number;
  /** n in flow/<flowId>/<customerId>/<n>, 1-based per customer and flow */
  runNumber: number;
  workflowId: string;
  enteredAt: number;
  endedAt: number | null;
  /** completed | converted | preempted | exited | failed; null while running */
  outcome: string | null;
  /** messageId of the goal event, when converted */
  conversionMessageId: string | null;
  /** messageId of the event that started the run: a redelivered event never starts a second run. */
  triggerMessageId: string | null;
  /** true: the run is in the flow's holdout (it sends nothing); absent otherwise. */
  holdout?: boolean;
}

export interface DecisionRecord {
  /** Idempotency key: the same decision recorded twice (a retried activity) is stored once. */
  key: string;
  customerId: string;
  at: number;
  flowId: string;
  flowVersion: number | null;
  /** started | skipped | suppressed | queued | preempted | converted | completed | exited | failed */
  outcome: string;
  reason: string;
  eventMessageId: string | null;
  workflowId: string | null;
}

export interface SendRecord {
  deliveryKey: string;
  customerId: string;
  flowId: string;
  flowVersion: number;
  workflowId: string;
  nodeId: string;
  template: string;
  to: string;
  subject: string;
  /** pending: claimed, not yet confirmed delivered; sent: delivered (SMTP accepted or written to the outbox) */
  status: 'pending' | 'sent';
  transport: 'smtp' | 'outbox';
  /** The flow's (workflow) time at which the send step ran, epoch ms: under time skipping this is the skipped time. */
  scheduledAt: number;
  sentAt: number | null;
  messageId: string | null;
  /** The template fallbacks the render used: which block or default stood in for missing data, and where. */
  fallbacks: FallbackUse[];
  /** The experiment (ab_split) the send's run was assigned in before this step, and its variant; absent outside one. */
  experimentId?: string;
  variant?: string;
}

/** What claimSend and reserveSend write: the send's ledger row before delivery. */
export type ClaimSendInput = Omit<SendRecord, 'status' | 'sentAt' | 'messageId' | 'fallbacks'> & { fallbacks?: FallbackUse[] };

/** What a send counts as under the frequency caps: its flow's group and topic, its template's category. */
export interface SendSlotCounts {
  group: string;
  topic: string | null;
  category: TemplateCategory;
}

/** A recent send of the customer as the cap check reads it; the counts are null on rows sent before they were kept. */
export interface SendSlotRow {
  deliveryKey: string;
  flowId: string;
  template: string;
  /** its scheduled (flow) time, epoch ms */
  at: number;
  group: string | null;
  topic: string | null;
  category: TemplateCategory | null;
}

export type ReserveSendResult =
  | { outcome: 'claimed'; record: SendRecord }
  /** claimed before under this delivery key (a retry): its slot is kept */
  | { outcome: 'existing'; record: SendRecord }
  | { outcome: 'wait'; until: number; reason: string }
  | { outcome: 'skip'; reason: string };

export interface OutboxMessage {
  deliveryKey: string;
  to: string;
  from: string;
  subject: string;
  html: string;
  text: string;
  headers: Record<string, string>;
  createdAt: number;
}

export interface Store {
  readonly dialect: 'sqlite' | 'postgres';
  /** Creates or upgrades the schema; safe to call on every start. */
  migrate(): Promise<void>;
  close(): Promise<void>;

  // --- events and profiles ---------------------------------------------------------------
  /** In one transaction: insert the event unless its messageId exists, fold it into the profile
   *  (core/profile applyEventToProfile), and mark it as owing a dispatch when `needsDispatch`. */
  recordEvent(event: NewEvent, options: { needsDispatch: boolean }): Promise<RecordEventResult>;
  /** The batch form of recordEvent: one transaction for all of them, results in input order. An event whose
   *  messageId repeats one stored before, or one earlier in the same batch, is a duplicate and writes nothing. */
  recordEvents(events: NewEvent[], options: { needsDispatch: (event: NewEvent) => boolean }): Promise<RecordEventResult[]>;
  markDispatched(eventIds: number[]): Promise<void>;
  /** Events still owing a dispatch (a crash between commit and signal, Temporal down), oldest first (by id), after
   *  the id `afterId` when given, so a pass can page past the ones it could not deliver. */
  listUndispatched(limit: number, afterId?: number): Promise<StoredEvent[]>;
  /** How many events owe a dispatch, and when the oldest of them arrived (null: none): one query on a tiny index. */
  undispatchedSummary(): Promise<{ count: number; oldestReceivedAt: number | null }>;
  /**
   * The customer's profile as it stood at `at` (core/profile-as-of): their events up to `at` folded, tags as today;
   * with `withSegments`, the segments they were in then (from their Segment Entered / Exited events). Undefined
   * when there is no profile today.
   */
  profileAsOf(customerId: string, at: number, options?: { withSegments?: boolean }): Promise<Profile | undefined>;
  /** A customer's track events, newest first, optionally filtered by names and a lower time bound (inclusive).
   *  An empty `names` list matches nothing. */
  eventsOf(customerId: string, filter?: { names?: string[]; since?: number; limit?: number }): Promise<StoredEvent[]>;
  /** With `withSegments`, `profile.segments` lists the segments the customer is in (what conditions read as profile.segments). */
  getProfile(customerId: string, options?: { withSegments?: boolean }): Promise<Profile | undefined>;
  /** Profiles in customer id order, `limit` at a time after the customer id `after` (null: from the first). */
  listProfiles(page: { after: string | null; limit: number }): Promise<Profile[]>;
  /** The customer an id belongs to now: an anonymousId or aliased id resolves to its customer; any other id to itself. */
  resolveCustomerId(id: string): Promise<string>;
  /** The ids (anonymousIds, aliases) merged into this customer, sorted. */
  aliasesOf(customerId: string): Promise<string[]>;
  /** The customer whose profile email is `email` (compared lower-cased), if one is known. */
  customerIdByEmail(email: string): Promise<string | undefined>;
  /** A customer's events of every type, newest first. */
  recentEvents(customerId: string, limit: number): Promise<StoredEvent[]>;
  /** update_profile step: set traits, add and remove tags. Creates the profile if absent. */
  updateProfile(customerId: string, update: { set: Record<string, unknown>; addTags: string[]; removeTags: string[] }): Promise<Profile>;
  /** Row counts per table, so tests can prove that bad input changed nothing. */
  tableCounts(): Promise<Record<string, number>>;

  // --- flows and arbitration -------------------------------------------------------------
  /** Records a flow version. Same id+version with a different source hash throws: bump `version`. */
  registerFlowVersion(flow: FlowDefinition): Promise<'registered' | 'unchanged'>;
  getFlowVersion(flowId: string, version: number): Promise<FlowDefinition | undefined>;
  /** The newest registered version of each flow. */
  latestFlowVersions(): Promise<FlowDefinition[]>;
  /** Idempotent by workflowId. */
  recordFlowEntry(entry: Omit<FlowEntry, 'endedAt' | 'outcome' | 'conversionMessageId'>): Promise<void>;
  /** Idempotent: the first outcome recorded for a run wins. */
  recordRunOutcome(workflowId: string, outcome: string, at: number, conversionMessageId?: string | null): Promise<void>;
  flowEntriesOf(customerId: string): Promise<FlowEntry[]>;
  getFlowEntry(workflowId: string): Promise<FlowEntry | undefined>;
  /** Idempotent by `key`. */
  recordDecisions(decisions: DecisionRecord[]): Promise<void>;
  /** Oldest first. */
  decisionsOf(customerId: string): Promise<DecisionRecord[]>;

  /**
   * The inactivity sweep: for each trigger, customers who did `event` at least once, whose latest
   * such event is before `before`, and who have not entered `flowId` since that event. Paged by
   * an opaque cursor (null when done); the work is one grouped query per trigger page.
   */
  inactiveCustomers(query: {
    triggers: Array<{ flowId: string; event: string; before: number }>;
    cursor: string | null;
    limit: number;
  }): Promise<{ customers: Array<{ customerId: string; flowId: string; lastEventAt: number }>; nextCursor: string | null }>;

  // --- segments -------------------------------------------------------------------------
  /**
   * In one transaction, for each customer (in id order): locks their check row, reads their profile, the events
   * `reads` asks for (given their stored due time) and their stored membership, and asks `decide`; then records
   * the decisions' events (as recordEvents would) and writes each membership and next check. A customer being
   * evaluated elsewhere waits; a failure anywhere changes nothing for any of them.
   */
  updateSegments(
    customerIds: string[],
    reads: (customerId: string, dueAt: number | null) => SegmentReadPlan,
    decide: (customerId: string, facts: SegmentFactsRead) => SegmentDecision,
    needsDispatch: (event: NewEvent) => boolean,
  ): Promise<SegmentUpdate[]>;
  /** Customers whose next check is at or before `now`, earliest first (by due time, then id), after `after` when given. */
  dueSegmentChecks(now: number, limit: number, after?: { dueAt: number; customerId: string }): Promise<Array<{ customerId: string; dueAt: number }>>;
  /** The customer's segments, by segment id. */
  segmentsOf(customerId: string): Promise<Array<{ segmentId: string; enteredAt: number }>>;
  /** One page of a segment's members, by customer id. */
  segmentMembers(segmentId: string, page: { after: string | null; limit: number }): Promise<Array<{ customerId: string; enteredAt: number }>>;
  /** Members per segment, and members shared by each pair of segments (a < b), from the membership table. */
  segmentCounts(): Promise<{ sizes: Record<string, number>; overlap: Array<{ a: string; b: string; shared: number }> }>;
  /**
   * Records the loaded segment definitions: a new or changed one (another hash) schedules every customer for an
   * evaluation at `now`; a segment no longer defined loses its members and its state. Returns which ids did what.
   */
  syncSegmentDefinitions(definitions: Array<{ segmentId: string; hash: string }>, now: number): Promise<{ changed: string[]; removed: string[] }>;
  segmentStates(): Promise<SegmentStateRecord[]>;
  /** After a sweep: every time-based change up to `at` has been applied. */
  markSegmentsSwept(at: number): Promise<void>;
  /** Schedules every buyer (every customer with `everyone`) for an evaluation at `at`, or keeps an earlier one. */
  scheduleSegmentChecks(target: 'buyers' | 'everyone', at: number): Promise<void>;
  /** Every buyer's order summary from the computed fields, for the RFM quintiles. */
  rfmInputs(): Promise<RfmInput[]>;
  rfmState(): Promise<{ boundaries: RfmBoundaries; computedAt: number } | undefined>;
  saveRfmState(boundaries: RfmBoundaries, computedAt: number): Promise<void>;

  // --- delivery ledger -------------------------------------------------------------------
  /** Claims a delivery key. Returns the existing record if the key was claimed before (a retry). */
  claimSend(send: ClaimSendInput): Promise<{ claimed: boolean; record: SendRecord }>;
  /**
   * claimSend under frequency caps (store/send-slots-store): in one transaction, serialized per customer, reads the
   * customer's sends scheduled after `since` and the sends waiting for a slot, asks `decide`, and claims the send,
   * records it as waiting (retrying at `until`, first due at `dueAt`) or drops its waiting row. A delivery key
   * claimed before is returned as `existing` without asking.
   */
  reserveSend(
    send: ClaimSendInput & SendSlotCounts,
    slot: { since: number; dueAt: number; priority: number; decide: (recent: SendSlotRow[], waiting: WaitingSlot[]) => SlotVerdict },
  ): Promise<ReserveSendResult>;
  /** Everyone's newest `limit` events named `names` since `since` (best send time's population prior). */
  engagementSince(names: readonly string[], since: number, limit: number): Promise<EngagementRow[]>;
  /** Records the customer's variant unless they have one (counting `assigned` once); returns the stored one. */
  recordAssignment(assignment: ExperimentAssignment): Promise<ExperimentAssignment>;
  /** The customer's recorded variant in the experiment, if they have one. */
  assignmentOf(experimentId: string, customerId: string): Promise<ExperimentAssignment | undefined>;
  /** The experiment's record, created as running from `startedAt` when it is new. */
  startExperiment(experiment: { experimentId: string; flowId: string; stepId: string; startedAt: number }): Promise<ExperimentRecord>;
  experimentOf(experimentId: string): Promise<ExperimentRecord | undefined>;
  /** Every experiment (of one flow), by id. */
  experimentsOf(flowId?: string): Promise<ExperimentRecord[]>;
  /** Keeps a running experiment's sequential state for its next check. */
  saveExperimentEvidence(experimentId: string, evidence: Record<string, unknown>): Promise<void>;
  /** Customers per variant of the experiment. */
  assignmentCounts(experimentId: string): Promise<Map<string, number>>;
  /** Ends a running experiment once (decided or inconclusive); false when it was no longer running. */
  concludeExperiment(experimentId: string, outcome: Parameters<typeof concludeExperimentRow>[2]): Promise<boolean>;
  /** Drops the waiting rows of a run that ended, and frees the offer codes those waiting sends had claimed. */
  releaseSendWaits(workflowId: string): Promise<void>;

  // --- report counters (store/metrics-store.ts) ----------------------------------------------
  // entered, assigned and sent are counted by recordFlowEntry, recordAssignment and completeSend / deliverToOutbox.
  /**
   * Folds the events recorded since the last fold into the counters (engagement once per send and kind, when the send
   * named is the event customer's; conversions by core/attribution with `flows` as they are now), `limit` events per
   * transaction (default 1000) until none is left; safe to run in several processes at once.
   */
  foldMetrics(options: { flows: readonly FlowDefinition[]; limit?: number }): Promise<MetricsFold>;
  /** Empties the counters and counts everything again from the entries, assignments, sends and events stored. */
  rebuildMetrics(flows: readonly FlowDefinition[]): Promise<MetricsFold>;
  /** The counters summed over the UTC days from `since` through `until` (epoch ms; absent: all), of one flow or all. */
  metricsOf(query?: MetricsQuery): Promise<MetricRow[]>;
  /** The customer's sends waiting for a slot, earliest retry first. */
  sendWaitsOf(customerId: string): Promise<WaitingSlot[]>;
  /** Marks a claimed send as delivered by SMTP; the first completion wins. Throws if the key was never claimed. */
  completeSend(deliveryKey: string, messageId: string, sentAt: number): Promise<void>;
  /** In one transaction: writes the message to the outbox and marks the send delivered. Exactly once per key.
   *  Throws (writing nothing) if the key was never claimed with claimSend. */
  deliverToOutbox(message: OutboxMessage, messageId: string): Promise<void>;
  /** Oldest first (newest last); with `limit`, the newest `limit` messages. */
  listOutbox(filter?: { to?: string; limit?: number }): Promise<OutboxMessage[]>;
  listSends(filter?: { customerId?: string; workflowId?: string }): Promise<SendRecord[]>;
  /** The send an ESP webhook event names, by the Message-ID header it went out with or by its delivery key (webhooks). */
  sendRecipient(by: { messageId: string } | { deliveryKey: string }): Promise<{ deliveryKey: string; customerId: string; to: string } | undefined>;

  // --- product catalog -------------------------------------------------------------------
  /** In one transaction, all or nothing: inserts the products, replacing any with the same product_id, and bumps
   *  catalogVersion. Products are stored as given: validate them first (core/catalog). */
  upsertProducts(products: Product[]): Promise<void>;
  /** Every product, sorted by product_id (by code unit, the same on both backends). */
  catalogProducts(): Promise<Product[]>;
  catalogProduct(productId: string): Promise<Product | undefined>;
  /** Deletes the products with these ids (absent ones are ignored) and returns how many there were; bumps
   *  catalogVersion when that is more than 0. Related ids naming them elsewhere are left; recommendations skip them. */
  deleteProducts(productIds: string[]): Promise<number>;
  /** A number that grows with every catalog change: one-row read, so readers can poll it and rebuild their index
   *  (core/recommendations catalogIndex) only when it moved. */
  catalogVersion(): Promise<number>;

  // --- API keys (store/api-keys-store.ts) --------------------------------------------------
  /** Stores a key made by core/api-keys newApiKey; throws ApiKeyConflictError (409) when its id or digest is stored. */
  createApiKey(record: ApiKeyRecord): Promise<void>;
  /** Every key, revoked ones too, newest first. */
  listApiKeys(): Promise<ApiKeyRecord[]>;
  /** Revokes the key with this id (or listed hint); revoking again keeps the first time. Undefined: no such key. */
  revokeApiKey(idOrHint: string, at: number): Promise<ApiKeyRecord | undefined>;
  /** The keys not revoked, newest first: what the server caches and reloads. */
  activeApiKeys(): Promise<ApiKeyRecord[]>;

  // --- event retention (store/retention-store.ts) --------------------------------------------
  /**
   * Deletes the events whose own time is before `cutoff` of up to `limit` customers (after `after`, by id), each
   * customer's in one transaction with their profile's baseline (what the events folded into, where a refold starts).
   * Kept: Segment Entered / Exited, and a customer's events from their oldest undispatched one on. `next`: the
   * customer to continue after, null when none is left.
   */
  purgeEventsBefore(cutoff: number, limit: number, after?: string | null): Promise<PurgePage>;

  // --- payload data keys (store/data-keys-store.ts) ----------------------------------------
  /** The data key of a subject (a customer's pseudonymous subject, `~system`, `~pseudonym-salt`), if stored. */
  dataKey(subject: string): Promise<DataKeyRecord | undefined>;
  /** Stores the key unless the subject has one; returns the subject's stored key (the first stored wins a race). */
  addDataKey(record: DataKeyRecord): Promise<DataKeyRecord>;
  /** Deletes a subject's key (crypto-shredding); whether there was one. */
  deleteDataKey(subject: string): Promise<boolean>;
  /** Every data key by subject; with `notWrappedBy`, those wrapped by another master key (what a rewrap has to do). */
  listDataKeys(filter?: { notWrappedBy?: string }): Promise<DataKeyRecord[]>;
  /** Rewraps a key still wrapped by `fromMasterKeyId`; whether it was. */
  rewrapDataKey(subject: string, fromMasterKeyId: string, to: { wrappedKey: string; masterKeyId: string }): Promise<boolean>;

  // --- suppressions (store/suppressions-store.ts) ------------------------------------------
  /** Entries by (address_hash, reason), `limit` at a time after the cursor `after` (the previous page's `next`); optionally of one reason. */
  listSuppressions(query: { reason?: SuppressionReason; after?: string | null; limit: number }): Promise<SuppressionPage>;
  /** Upserts by (address_hash, reason), all in one transaction: all or nothing. */
  addSuppressions(entries: SuppressionEntry[]): Promise<void>;
  /** Removes the entries of an address hash (core/suppression hashOfAddressOrHash), or only those of one reason; how many went. */
  removeSuppressions(which: { addressHash: string; reason?: SuppressionReason }): Promise<number>;
  /** The address's entries that hold at `now` (not expired): what a flow entry and a send check. */
  suppressionsFor(address: string, now: number): Promise<SuppressionEntry[]>;
  /** Checks every row (core/suppression entryFromInput: a bad one throws naming its row and field) and writes them in one transaction. */
  importSuppressions(rows: unknown[], defaults: EntryDefaults, fieldName?: (index: number, field: string) => string): Promise<number>;
  /** Every entry, expired ones too. */
  exportSuppressions(): Promise<SuppressionEntry[]>;

  // --- consent trail (store/consent-store.ts) ----------------------------------------------
  /** Every change of the customer's consent (any kind), oldest first: value, source, time and the event that made it. */
  consentTrail(customerId: string): Promise<ConsentChange[]>;

  // --- erase and export (store/customer-data-store.ts) -------------------------------------
  /**
   * In one transaction, everything held about the customer `id` names (an alias names its customer) goes: events,
   * profile, identity links, segment state, runs, decisions, sends, outbox messages, consent trail, experiment
   * assignments, credited conversions, what the reports counted of their sends and (given its subject) the payload
   * data key (the report counters are sums that name no one, and stay); their offer codes stay claimed, unlinked from
   * them (customer and delivery key cleared); their suppression entries keep the address
   * hash only, and an `erased` entry joins them. Logs one erasures row without personal data. CustomerNotFoundError
   * (404) when nothing names the id.
   */
  eraseCustomer(id: string, options: EraseOptions): Promise<ErasureResult>;
  /** One document with everything held about the customer, in a stable order; CustomerNotFoundError (404) when unknown. */
  exportCustomer(id: string, options?: { at?: number }): Promise<CustomerExport>;
  /** The erasure log, newest first. */
  listErasures(): Promise<ErasureRecord[]>;

  // --- overlap and fatigue audit (store/audit-store.ts) ------------------------------------
  /** The decisions, sends and Unsubscribed / Email Marked as Spam events of [from, to] (each by its own time), at
   *  most `limit` of each kind (default store/audit-store AUDIT_ROW_LIMIT); `truncated` when there were more. */
  auditRows(period: { from: number; to: number }, limit?: number): Promise<AuditRows>;

  // --- offer codes (store/offer-codes-store.ts) ---------------------------------------------
  /** Adds codes to a pool in one transaction (checked first: a bad pool id or code writes nothing); codes the pool holds are skipped. */
  importOfferCodes(pool: string, codes: readonly string[], at: number): Promise<OfferCodeImport>;
  /**
   * The pool's next unclaimed code for a send, or the one its delivery key claimed before (a retry); none when the
   * pool is empty or unknown. Concurrent claims never get one code twice. With the pool's figures after the claim.
   */
  claimOfferCode(request: OfferCodeClaimRequest): Promise<OfferCodeClaim>;
  /** Frees the codes a send claimed (it was skipped after claiming), unless the ledger holds the send (it may have gone out); how many. */
  releaseOfferCodes(deliveryKey: string): Promise<number>;
  /** Every pool's figures (total, claimed, remaining, low), by pool id. */
  offerCodePools(): Promise<OfferPoolStats[]>;
}
