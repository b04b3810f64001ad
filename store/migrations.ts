// Schema migrations, kept in code (not files) so they ship inside the package and run under tsx and jest alike.
import { Migrator, sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';

export type StoreDialect = 'sqlite' | 'postgres';

/** Column types that differ by dialect; everything else is portable SQL. */
function types(dialect: StoreDialect) {
  return dialect === 'postgres'
    ? ({ id: 'bigserial', time: 'bigint', bool: 'boolean', falseValue: sql`false`, float: 'double precision' } as const)
    : ({ id: 'integer', time: 'integer', bool: 'integer', falseValue: sql`0`, float: 'real' } as const);
}

function initial(dialect: StoreDialect): Migration {
  const t = types(dialect);
  // SQLite: INTEGER PRIMARY KEY AUTOINCREMENT never reuses ids, so ids order rows by arrival.
  const idColumn = (db: Kysely<any>, table: string) =>
    db.schema
      .createTable(table)
      .addColumn('id', t.id, (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()));

  return {
    async up(db: Kysely<any>): Promise<void> {
      await idColumn(db, 'events')
        .addColumn('message_id', 'text', (c) => c.notNull().unique())
        .addColumn('type', 'text', (c) => c.notNull())
        .addColumn('customer_id', 'text', (c) => c.notNull())
        .addColumn('user_id', 'text')
        .addColumn('anonymous_id', 'text')
        .addColumn('name', 'text')
        .addColumn('properties', 'text', (c) => c.notNull())
        .addColumn('traits', 'text', (c) => c.notNull())
        .addColumn('context', 'text', (c) => c.notNull())
        .addColumn('timestamp', t.time, (c) => c.notNull())
        .addColumn('received_at', t.time, (c) => c.notNull())
        .addColumn('dispatched', t.bool, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('events_customer_name_time').on('events').columns(['customer_id', 'name', 'timestamp']).execute();
      await db.schema.createIndex('events_customer_time').on('events').columns(['customer_id', 'timestamp']).execute();
      // Partial: almost every event is dispatched, so the index stays tiny and the recovery scan cheap.
      await db.schema
        .createIndex('events_undispatched')
        .on('events')
        .column('id')
        .where(sql.ref('dispatched'), '=', t.falseValue)
        .execute();

      await db.schema
        .createTable('profiles')
        .addColumn('customer_id', 'text', (c) => c.primaryKey())
        .addColumn('email', 'text')
        .addColumn('timezone', 'text')
        .addColumn('traits', 'text', (c) => c.notNull())
        .addColumn('computed', 'text', (c) => c.notNull())
        .addColumn('consent', 'text', (c) => c.notNull())
        .addColumn('tags', 'text', (c) => c.notNull())
        .addColumn('updated_at', t.time, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('profiles_email').on('profiles').column('email').execute();

      await db.schema
        .createTable('flow_versions')
        .addColumn('flow_id', 'text', (c) => c.notNull())
        .addColumn('version', 'integer', (c) => c.notNull())
        .addColumn('sha256', 'text', (c) => c.notNull())
        .addColumn('source_file', 'text', (c) => c.notNull())
        .addColumn('definition', 'text', (c) => c.notNull())
        .addColumn('registered_at', t.time, (c) => c.notNull())
        .addPrimaryKeyConstraint('flow_versions_pk', ['flow_id', 'version'])
        .execute();

      await idColumn(db, 'flow_entries')
        .addColumn('workflow_id', 'text', (c) => c.notNull().unique())
        .addColumn('customer_id', 'text', (c) => c.notNull())
        .addColumn('flow_id', 'text', (c) => c.notNull())
        .addColumn('flow_version', 'integer', (c) => c.notNull())
        .addColumn('run_number', 'integer', (c) => c.notNull())
        .addColumn('entered_at', t.time, (c) => c.notNull())
        .addColumn('ended_at', t.time)
        .addColumn('outcome', 'text')
        .addColumn('conversion_message_id', 'text')
        .addColumn('trigger_message_id', 'text')
        .execute();
      await db.schema.createIndex('flow_entries_customer_flow').on('flow_entries').columns(['customer_id', 'flow_id']).execute();

      await idColumn(db, 'decisions')
        .addColumn('key', 'text', (c) => c.notNull().unique())
        .addColumn('customer_id', 'text', (c) => c.notNull())
        .addColumn('at', t.time, (c) => c.notNull())
        .addColumn('flow_id', 'text', (c) => c.notNull())
        .addColumn('flow_version', 'integer')
        .addColumn('outcome', 'text', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('event_message_id', 'text')
        .addColumn('workflow_id', 'text')
        .execute();
      await db.schema.createIndex('decisions_customer').on('decisions').columns(['customer_id', 'id']).execute();

      await db.schema
        .createTable('sends')
        .addColumn('delivery_key', 'text', (c) => c.primaryKey())
        .addColumn('customer_id', 'text', (c) => c.notNull())
        .addColumn('flow_id', 'text', (c) => c.notNull())
        .addColumn('flow_version', 'integer', (c) => c.notNull())
        .addColumn('workflow_id', 'text', (c) => c.notNull())
        .addColumn('node_id', 'text', (c) => c.notNull())
        .addColumn('template', 'text', (c) => c.notNull())
        .addColumn('to_address', 'text', (c) => c.notNull())
        .addColumn('subject', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('transport', 'text', (c) => c.notNull())
        .addColumn('scheduled_at', t.time, (c) => c.notNull())
        .addColumn('sent_at', t.time)
        .addColumn('message_id', 'text')
        .execute();
      await db.schema.createIndex('sends_customer').on('sends').columns(['customer_id', 'scheduled_at']).execute();
      await db.schema.createIndex('sends_workflow').on('sends').column('workflow_id').execute();

      await idColumn(db, 'outbox')
        .addColumn('delivery_key', 'text', (c) => c.notNull().unique())
        .addColumn('to_address', 'text', (c) => c.notNull())
        .addColumn('from_address', 'text', (c) => c.notNull())
        .addColumn('subject', 'text', (c) => c.notNull())
        .addColumn('html', 'text', (c) => c.notNull())
        .addColumn('text', 'text', (c) => c.notNull())
        .addColumn('headers', 'text', (c) => c.notNull())
        .addColumn('created_at', t.time, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('outbox_to').on('outbox').columns(['to_address', 'id']).execute();
    },

    async down(db: Kysely<any>): Promise<void> {
      for (const table of ['outbox', 'sends', 'decisions', 'flow_entries', 'flow_versions', 'profiles', 'events']) {
        await db.schema.dropTable(table).ifExists().execute();
      }
    },
  };
}

/** Identity resolution (anonymous visitor → known customer, aliases) and per-trait times for order-free merging. */
function identities(dialect: StoreDialect): Migration {
  const t = types(dialect);
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('identities')
        .addColumn('alias_id', 'text', (c) => c.primaryKey())
        .addColumn('customer_id', 'text', (c) => c.notNull())
        .addColumn('created_at', t.time, (c) => c.notNull())
        .execute();
      await db.schema.createIndex('identities_customer').on('identities').column('customer_id').execute();
      await db.schema.alterTable('profiles').addColumn('trait_times', 'text', (c) => c.notNull().defaultTo('{}')).execute();
    },
    async down(db: Kysely<any>): Promise<void> {
      await db.schema.dropTable('identities').ifExists().execute();
      await db.schema.alterTable('profiles').dropColumn('trait_times').execute();
    },
  };
}

/**
 * One customer index on events instead of two: (customer_id, name, timestamp) also serves lookups by customer
 * alone, and every index costs page writes on the ingest path (about a quarter of the WAL traffic).
 */
function leanEventIndexes(): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema.dropIndex('events_customer_time').ifExists().execute();
    },
    async down(db: Kysely<any>): Promise<void> {
      await db.schema.createIndex('events_customer_time').on('events').columns(['customer_id', 'timestamp']).execute();
    },
  };
}

/**
 * The product catalog that recommendation blocks read, shared by every worker, and the one-row counter that every
 * catalog change bumps so a worker rebuilds its index only when the catalog changed.
 */
function catalog(dialect: StoreDialect): Migration {
  const t = types(dialect);
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('catalog_products')
        .addColumn('product_id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('category', 'text', (c) => c.notNull())
        .addColumn('price', t.float, (c) => c.notNull())
        .addColumn('image_url', 'text')
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('rating', t.float)
        .addColumn('review_count', 'integer')
        .addColumn('stock', 'integer')
        .addColumn('related_ids', 'text', (c) => c.notNull())
        .addColumn('updated_at', t.time, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('catalog_state')
        .addColumn('id', 'integer', (c) => c.primaryKey())
        .addColumn('version', t.time, (c) => c.notNull())
        .execute();
      await db.insertInto('catalog_state').values({ id: 1, version: 0 }).execute();
    },
    async down(db: Kysely<any>): Promise<void> {
      await db.schema.dropTable('catalog_state').ifExists().execute();
      await db.schema.dropTable('catalog_products').ifExists().execute();
    },
  };
}

/** Each send records the template fallbacks its render used (JSON list), for "why did this email say X". */
function sendFallbacks(): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema.alterTable('sends').addColumn('fallbacks', 'text', (c) => c.notNull().defaultTo('[]')).execute();
    },
    async down(db: Kysely<any>): Promise<void> {
      await db.schema.alterTable('sends').dropColumn('fallbacks').execute();
    },
  };
}

/**
 * Segment membership, kept current by events and by a sweep over `segment_checks` (the next time each customer's
 * membership can change with time alone), so nothing is ever rebuilt wholesale.
 */
function segments(dialect: StoreDialect): Migration {
  const t = types(dialect);
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('segment_members')
        .addColumn('segment_id', 'text', (c) => c.notNull())
        .addColumn('customer_id', 'text', (c) => c.notNull())
        .addColumn('entered_at', t.time, (c) => c.notNull())
        .addPrimaryKeyConstraint('segment_members_pk', ['segment_id', 'customer_id'])
        .execute();
      await db.schema.createIndex('segment_members_customer').on('segment_members').column('customer_id').execute();
      await db.schema
        .createTable('segment_checks')
        .addColumn('customer_id', 'text', (c) => c.primaryKey())
        .addColumn('next_check_at', t.time)
        .execute();
      // Partial: customers with nothing scheduled are not in the sweep's index at all.
      await db.schema
        .createIndex('segment_checks_due')
        .on('segment_checks')
        .column('next_check_at')
        .where(sql.ref('next_check_at'), 'is not', null)
        .execute();
      await db.schema
        .createTable('segment_state')
        .addColumn('segment_id', 'text', (c) => c.primaryKey())
        .addColumn('definition_hash', 'text', (c) => c.notNull())
        .addColumn('defined_at', t.time, (c) => c.notNull())
        .addColumn('swept_at', t.time)
        .execute();
      await db.schema
        .createTable('rfm_state')
        .addColumn('id', 'integer', (c) => c.primaryKey())
        .addColumn('boundaries', 'text', (c) => c.notNull())
        .addColumn('computed_at', t.time, (c) => c.notNull())
        .execute();
    },
    async down(db: Kysely<any>): Promise<void> {
      for (const table of ['rfm_state', 'segment_state', 'segment_checks', 'segment_members']) await db.schema.dropTable(table).ifExists().execute();
    },
  };
}

/**
 * API keys (core/api-keys): admin keys for /api and source keys for ingest, stored as their SHA-256 digest only. The
 * unique digest is the lookup; revoked keys stay (revoked_at set) so a list still says what a leaked key was.
 */
function apiKeys(dialect: StoreDialect): Migration {
  const t = types(dialect);
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('api_keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('scopes', 'text', (c) => c.notNull())
        .addColumn('digest', 'text', (c) => c.notNull().unique())
        .addColumn('hint', 'text', (c) => c.notNull())
        .addColumn('created_at', t.time, (c) => c.notNull())
        .addColumn('revoked_at', t.time)
        .execute();
    },
    async down(db: Kysely<any>): Promise<void> {
      await db.schema.dropTable('api_keys').ifExists().execute();
    },
  };
}

/** ESP webhooks find the send a SendGrid event echoes by its Message-ID: without an index, a scan per event. */
function sendsByMessageId(): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema.createIndex('sends_message_id').on('sends').column('message_id').execute();
    },
    async down(db: Kysely<any>): Promise<void> {
      await db.schema.dropIndex('sends_message_id').ifExists().execute();
    },
  };
}

/**
 * Privacy (issue 14): the suppression list (by SHA-256 of the lower-cased address, so an erased or unsubscribed
 * address stays suppressed as a hash), the consent trail, the per-customer data keys of the Temporal payload codec
 * (by pseudonymous subject, wrapped by the master key) and the erasure log (no personal data).
 */
function privacy(dialect: StoreDialect): Migration {
  const t = types(dialect);
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('suppressions')
        .addColumn('address_hash', 'text', (c) => c.notNull())
        .addColumn('reason', 'text', (c) => c.notNull())
        .addColumn('address', 'text')
        .addColumn('scope', 'text', (c) => c.notNull())
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('created_at', t.time, (c) => c.notNull())
        .addColumn('expires_at', t.time)
        .addPrimaryKeyConstraint('suppressions_pk', ['address_hash', 'reason'])
        .execute();
      await db.schema
        .createTable('consent_changes')
        .addColumn('id', t.id, (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
        .addColumn('customer_id', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('granted', t.bool, (c) => c.notNull())
        .addColumn('source', 'text', (c) => c.notNull())
        .addColumn('at', t.time, (c) => c.notNull())
        .addColumn('recorded_at', t.time, (c) => c.notNull())
        .addColumn('event_message_id', 'text')
        .execute();
      await db.schema.createIndex('consent_changes_customer').on('consent_changes').columns(['customer_id', 'id']).execute();
      await db.schema
        .createTable('data_keys')
        .addColumn('subject', 'text', (c) => c.primaryKey())
        .addColumn('wrapped_key', 'text', (c) => c.notNull())
        .addColumn('master_key_id', 'text', (c) => c.notNull())
        .addColumn('created_at', t.time, (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('erasures')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('at', t.time, (c) => c.notNull())
        .addColumn('requested_by', 'text', (c) => c.notNull())
        .addColumn('removed', 'text', (c) => c.notNull())
        .execute();
    },
    async down(db: Kysely<any>): Promise<void> {
      for (const table of ['erasures', 'data_keys', 'consent_changes', 'suppressions']) await db.schema.dropTable(table).ifExists().execute();
    },
  };
}

/**
 * Event retention (MICROFLOWS_EVENT_RETENTION): what a customer's purged events folded into (core/behavior's computed
 * fields, JSON), so a refold starts from it rather than from nothing. null: no event of theirs was purged.
 */
function eventRetention(): Migration {
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema.alterTable('profiles').addColumn('computed_base', 'text').execute();
    },
    async down(db: Kysely<any>): Promise<void> {
      await db.schema.alterTable('profiles').dropColumn('computed_base').execute();
    },
  };
}

/**
 * Frequency caps (core/send-policy): what each send counts as — its flow's group and topic and its template's
 * category — kept on the row so the cap check reads one table inside the reserving transaction. Rows sent before this
 * migration have nulls; the send step reads those through the loaded flows and templates. `send_waits`: the sends a
 * cap deferred, per customer, so a freed slot goes to the highest priority among them.
 */
function sendSlots(dialect: StoreDialect): Migration {
  const t = types(dialect);
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema.alterTable('sends').addColumn('flow_group', 'text').execute();
      await db.schema.alterTable('sends').addColumn('topic', 'text').execute();
      await db.schema.alterTable('sends').addColumn('category', 'text').execute();
      await db.schema
        .createTable('send_waits')
        .addColumn('delivery_key', 'text', (c) => c.primaryKey())
        .addColumn('customer_id', 'text', (c) => c.notNull())
        .addColumn('workflow_id', 'text', (c) => c.notNull())
        .addColumn('flow_id', 'text', (c) => c.notNull())
        .addColumn('priority', 'integer', (c) => c.notNull())
        .addColumn('due_at', t.time, (c) => c.notNull())
        .addColumn('until', t.time, (c) => c.notNull())
        .addColumn('flow_group', 'text', (c) => c.notNull())
        .addColumn('topic', 'text')
        .addColumn('category', 'text', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('send_waits_customer').on('send_waits').column('customer_id').execute();
      await db.schema.createIndex('send_waits_workflow').on('send_waits').column('workflow_id').execute();
    },
    async down(db: Kysely<any>): Promise<void> {
      await db.schema.dropTable('send_waits').ifExists().execute();
      for (const column of ['category', 'topic', 'flow_group']) await db.schema.alterTable('sends').dropColumn(column).execute();
    },
  };
}

/**
 * Experiments and measurement (issue 16): each customer's variant per experiment (stable across re-entries and
 * versions), each experiment's state and decision, which runs are in a flow's holdout, the experiment and variant a
 * send belongs to, and the counters reports read (per flow, version, step, variant, metric and UTC day of the send or
 * entry), with what they have counted (send_events, conversions) so nothing counts twice and a rebuild can start over.
 */
function experiments(dialect: StoreDialect): Migration {
  const t = types(dialect);
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('experiment_assignments')
        .addColumn('experiment_id', 'text', (c) => c.notNull())
        .addColumn('customer_id', 'text', (c) => c.notNull())
        .addColumn('variant', 'text', (c) => c.notNull())
        .addColumn('assigned_at', t.time, (c) => c.notNull())
        .addColumn('flow_id', 'text', (c) => c.notNull())
        .addColumn('flow_version', 'integer', (c) => c.notNull())
        .addColumn('step_id', 'text', (c) => c.notNull())
        .addColumn('workflow_id', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('experiment_assignments_pk', ['experiment_id', 'customer_id'])
        .execute();
      await db.schema.createIndex('experiment_assignments_customer').on('experiment_assignments').column('customer_id').execute();
      await db.schema
        .createTable('experiments')
        .addColumn('experiment_id', 'text', (c) => c.primaryKey())
        .addColumn('flow_id', 'text', (c) => c.notNull())
        .addColumn('step_id', 'text', (c) => c.notNull())
        .addColumn('started_at', t.time, (c) => c.notNull())
        .addColumn('state', 'text', (c) => c.notNull())
        .addColumn('winner', 'text')
        .addColumn('decided_at', t.time)
        .addColumn('reason', 'text')
        .addColumn('figures', 'text')
        .addColumn('evidence', 'text')
        .execute();
      await db.schema.alterTable('flow_entries').addColumn('holdout', t.bool, (c) => c.notNull().defaultTo(t.falseValue)).execute();
      await db.schema.alterTable('sends').addColumn('experiment_id', 'text').execute();
      await db.schema.alterTable('sends').addColumn('variant', 'text').execute();
      await db.schema
        .createTable('flow_metrics')
        .addColumn('flow_id', 'text', (c) => c.notNull())
        .addColumn('flow_version', 'integer', (c) => c.notNull())
        .addColumn('step_id', 'text', (c) => c.notNull())
        .addColumn('variant', 'text', (c) => c.notNull())
        .addColumn('metric', 'text', (c) => c.notNull())
        .addColumn('day', 'integer', (c) => c.notNull())
        .addColumn('count', 'integer', (c) => c.notNull())
        .addColumn('amount', t.float, (c) => c.notNull())
        .addColumn('amount_squares', t.float, (c) => c.notNull())
        .addPrimaryKeyConstraint('flow_metrics_pk', ['flow_id', 'flow_version', 'step_id', 'variant', 'metric', 'day'])
        .execute();
      await db.schema
        .createTable('send_events')
        .addColumn('delivery_key', 'text', (c) => c.notNull())
        .addColumn('kind', 'text', (c) => c.notNull())
        .addColumn('at', t.time, (c) => c.notNull())
        .addPrimaryKeyConstraint('send_events_pk', ['delivery_key', 'kind'])
        .execute();
      await db.schema
        .createTable('conversions')
        .addColumn('event_message_id', 'text', (c) => c.notNull())
        .addColumn('flow_id', 'text', (c) => c.notNull())
        .addColumn('customer_id', 'text', (c) => c.notNull())
        .addColumn('workflow_id', 'text')
        .addColumn('delivery_key', 'text')
        .addColumn('at', t.time, (c) => c.notNull())
        .addColumn('revenue', t.float, (c) => c.notNull())
        .addPrimaryKeyConstraint('conversions_pk', ['event_message_id', 'flow_id'])
        .execute();
      await db.schema.createIndex('conversions_customer').on('conversions').column('customer_id').execute();
      await db.schema
        .createTable('metrics_state')
        .addColumn('id', 'integer', (c) => c.primaryKey())
        .addColumn('event_cursor', t.time, (c) => c.notNull())
        .addColumn('updated_at', t.time, (c) => c.notNull())
        // PostgreSQL (store/metrics-store settledThrough): the events up to settled_through are all committed (or gone);
        // pending_through was the newest at the last fold, settled once the writers then in flight have ended.
        .addColumn('settled_through', t.time, (c) => c.notNull().defaultTo(0))
        .addColumn('pending_through', t.time, (c) => c.notNull().defaultTo(0))
        .addColumn('pending_writers', 'text', (c) => c.notNull().defaultTo(''))
        .execute();
      await db.insertInto('metrics_state').values({ id: 1, event_cursor: 0, updated_at: 0 }).execute();
    },
    async down(db: Kysely<any>): Promise<void> {
      for (const table of ['metrics_state', 'conversions', 'send_events', 'flow_metrics', 'experiments', 'experiment_assignments']) await db.schema.dropTable(table).ifExists().execute();
      for (const column of ['variant', 'experiment_id']) await db.schema.alterTable('sends').dropColumn(column).execute();
      await db.schema.alterTable('flow_entries').dropColumn('holdout').execute();
    },
  };
}

/**
 * Unique offer codes (issue 17): the codes of each pool, imported with `microflows codes import`, and the send each is
 * claimed by. The partial index holds only unclaimed codes, so "the next unclaimed code of a pool" reads one index
 * entry however many codes were claimed; (delivery_key, pool) is unique, so one send holds one code per pool and a
 * retried send finds its own (and releasing a send's codes finds them by its delivery key). offer_code_pools keeps each
 * pool's total and claimed counts, written in the transactions that change them, so a claim reads its pool's figures
 * (is it running low?) from one row instead of counting a pool of 100,000 codes at every send.
 */
function offerCodes(dialect: StoreDialect): Migration {
  const t = types(dialect);
  return {
    async up(db: Kysely<any>): Promise<void> {
      await db.schema
        .createTable('offer_codes')
        .addColumn('id', t.id, (c) => (dialect === 'sqlite' ? c.primaryKey().autoIncrement() : c.primaryKey()))
        .addColumn('pool', 'text', (c) => c.notNull())
        .addColumn('code', 'text', (c) => c.notNull())
        .addColumn('imported_at', t.time, (c) => c.notNull())
        .addColumn('customer_id', 'text')
        .addColumn('delivery_key', 'text')
        .addColumn('claimed_at', t.time)
        .execute();
      await db.schema.createIndex('offer_codes_pool_code').on('offer_codes').columns(['pool', 'code']).unique().execute();
      await db.schema.createIndex('offer_codes_claim').on('offer_codes').columns(['delivery_key', 'pool']).unique().execute();
      await db.schema.createIndex('offer_codes_unclaimed').on('offer_codes').columns(['pool', 'id']).where(sql.ref('claimed_at'), 'is', null).execute();
      await db.schema.createIndex('offer_codes_customer').on('offer_codes').column('customer_id').execute();
      await db.schema
        .createTable('offer_code_pools')
        .addColumn('pool', 'text', (c) => c.primaryKey())
        .addColumn('total', 'integer', (c) => c.notNull())
        .addColumn('claimed', 'integer', (c) => c.notNull())
        .execute();
    },
    async down(db: Kysely<any>): Promise<void> {
      await db.schema.dropTable('offer_code_pools').ifExists().execute();
      await db.schema.dropTable('offer_codes').ifExists().execute();
    },
  };
}

/** Names sort in the order they run; never rename or edit one that has shipped — add a new one. */
export function migrationsFor(dialect: StoreDialect): Record<string, Migration> {
  return {
    '0001_initial': initial(dialect),
    '0002_identities': identities(dialect),
    '0003_lean_event_indexes': leanEventIndexes(),
    '0004_catalog': catalog(dialect),
    '0005_send_fallbacks': sendFallbacks(),
    '0006_segments': segments(dialect),
    '0007_api_keys': apiKeys(dialect),
    '0008_sends_by_message_id': sendsByMessageId(),
    '0009_privacy': privacy(dialect),
    '0010_event_retention': eventRetention(),
    '0011_send_slots': sendSlots(dialect),
    '0012_experiments': experiments(dialect),
    '0013_offer_codes': offerCodes(dialect),
  };
}

/** Brings the schema to the newest migration; Kysely's lock makes concurrent starts safe. */
export async function migrateToLatest(db: Kysely<any>, dialect: StoreDialect): Promise<void> {
  const provider: MigrationProvider = { getMigrations: async () => migrationsFor(dialect) };
  const migrator = new Migrator({ db, provider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName;
    const cause = error instanceof Error ? error.message : String(error);
    throw new Error(`database migration ${failed ?? ''} failed: ${cause}`, { cause: error });
  }
}
