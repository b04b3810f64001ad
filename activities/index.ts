// Every side effect a workflow needs: store reads and writes, rendering, delivery, signalling.
// Built from explicit dependencies so the worker, tests and benchmarks wire real parts the same way.
import crypto from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { summarizeEntryHistory, type CustomerEventSignalInput, type DecisionLogEntry, type EntryHistory, type HandledExit } from '../core/arbiter-state';
import { compileCondition, type Condition } from '../core/conditions';
import { evaluateEntry, fireTrigger, type EntryCheck } from '../core/entry';
import type { FlowDefinition } from '../core/flow-types';
import { mailboxProblem } from '../core/email-address';
import { profileContext, type Profile } from '../core/profile';
import { sendSuppression, sendsTransactional, suppressedEntry } from '../core/suppression';
import { topicIsOn } from '../core/topic-consent';
import { trackingAllowed } from '../core/tracking-consent';
import type { EventFacts } from '../core/triggers';
import { eventContext, eventMatches } from '../core/triggers';
import type { SendRecord, SendSlotRow, Store } from '../store/store';
import { signalCustomerEvent, type SignalTarget } from '../client/customer-signals';
import type { SmtpMailer } from './mailer';
import { clickUrlSigner, listUnsubscribeHeaders, openPixelUrl, preferencesUrl, tokenExpiry, unsubscribeUrl, withUtm } from '../core/tracking';
import { countdownImageUrl } from '../core/countdown';
import { catalogRenderOptions, type CatalogReader } from './catalog';
import type { RenderOptions, TemplateLibrary } from './templates';
import type { SegmentEngine, SweepPage } from './segment-engine';
import { SEND_HEARTBEAT_EVERY_MS } from '../core/send-heartbeat';
import { DateTime } from 'luxon';
import { BEST_SEND_TIME_DEFAULTS, ENGAGEMENT_SIGNALS, bestSendAt, bestSendHour, populationPrior, type EngagementSample } from '../core/best-send-time';
import { flowTimeZone } from '../core/flow-types';
import { chooseTimeZone, latestEventTimeZone, quietHoursEnd } from '../core/quiet-hours';
import { DEFAULT_SEND_POLICY, capLookbackMs, formatTimeOfDay, type RecentSend, type SendPolicy } from '../core/send-policy';
import { decideSlot, isCapped } from '../core/send-slot';
import { chooseVariant, inHoldout } from '../core/experiment-assignment';
import { OfferPoolWatch, resolveOfferPools } from '../core/offer-codes';

export interface ActivityDeps {
  store: Store;
  templates: TemplateLibrary;
  /** null: deliver to the outbox table */
  smtp: SmtpMailer | null;
  fromAddress: string;
  /**
   * Signs tracked links, the open pixel and unsubscribe links, which point at `baseUrl()` (the server's public
   * address), valid for `tokenTtlMs` from the email's date (default 180 days). `linkDomains`: where a link from data
   * may point (default: the template library's, the shop URL's host). null: links go out as written, with UTM tags,
   * and emails carry no tracking.
   */
  tracking: { secret: string; baseUrl: () => string; linkDomains?: readonly string[]; tokenTtlMs?: number } | null;
  /** Products for recommendation blocks; null: blocks show only what events said (the cart). */
  catalog: CatalogReader | null;
  /** For the sweep, which signals customers. */
  signals: SignalTarget | null;
  /** The flows currently loaded (latest versions), for the sweep's inactivity triggers. */
  currentFlows: () => FlowDefinition[];
  /** Segment membership, for the segment sweep; null: no segments (the sweep has nothing to do). */
  segments: SegmentEngine | null;
  /** How long events are kept (MICROFLOWS_EVENT_RETENTION, ms); null or absent: forever, and the purge does nothing. */
  eventRetentionMs?: number | null;
  /** The send policy (flows/policy.yaml): frequency caps, quiet hours, the default time zone; default none. */
  sendPolicy?: () => SendPolicy;
  /** Whether a customer who gave no behavioral_tracking consent is tracked (MICROFLOWS_TRACKING_DEFAULT): their emails get the open pixel and tracked links; default yes. */
  trackingGrantedByDefault?: boolean;
  /** Where warnings go (an offer code pool running low); stdout by default. */
  log?: (message: string) => void;
}

/** What the arbiter hands a run it admitted, for the run to record as its first step. */
export interface RunAdmission {
  runNumber: number;
  /** workflow time of the decision, epoch ms */
  enteredAt: number;
  triggerMessageId: string;
  decisions: Array<DecisionLogEntry & { key: string }>;
}

export type SendEmailInput = Pick<SendRecord, 'deliveryKey' | 'customerId' | 'flowId' | 'flowVersion' | 'workflowId' | 'nodeId' | 'template' | 'scheduledAt'> & {
  data: Record<string, unknown>;
  trigger: EventFacts;
  /** When the step first asked to send (flow time): defer.max counts from it. Absent: scheduledAt. */
  dueAt?: number;
  /** 1 for the step's first ask, then one more after each deferral: keys the deferral decisions. */
  attempt?: number;
  /** `at: best_time`: choose the customer's best hour within this delay first (only on the first ask). */
  bestTime?: { withinMs: number };
  /** The experiment the run was last assigned in (an ab_split before this step) and its variant: recorded with the send. */
  experiment?: { id: string; variant: string };
};

export type SendEmailResult =
  | { status: 'sent'; messageId: string; transport: 'smtp' | 'outbox' }
  | { status: 'already_sent'; messageId: string | null }
  | { status: 'skipped'; reason: string }
  /** Not now: quiet hours, best send time or a frequency cap; the step asks again at `until` (flow time). */
  | { status: 'deferred'; until: number; reason: string };

/** How many of a customer's newest goal events a new arbiter reads: the latest per flow is among them. */
const GOAL_EVENTS_READ = 200;

/** A stored event as the trigger matchers read one. */
function eventContextFacts(event: { messageId: string; name: string | null; type: EventFacts['type']; properties: Record<string, unknown>; timestamp: number }): EventFacts {
  return { messageId: event.messageId, name: event.name, type: event.type, properties: event.properties, timestamp: event.timestamp };
}

/** How many of a customer's newest track events are read for the context.timezone of their latest. */
const TIMEZONE_EVENTS_READ = 20;
/** How many of the population's newest opens and clicks the best-send-time prior reads, and how long it is kept. */
const PRIOR_EVENTS_READ = 50_000;
const PRIOR_KEPT_MS = 3_600_000;

const iso = (at: number): string => new Date(at).toISOString();

function messageIdFor(deliveryKey: string): string {
  return `<${crypto.createHash('sha256').update(deliveryKey).digest('hex').slice(0, 32)}@microflows>`;
}

export function createActivities(deps: ActivityDeps) {
  const { store } = deps;
  // Flow versions are immutable once registered, so they are cached forever per worker.
  const flowCache = new Map<string, FlowDefinition>();

  /** The entry check with the suppression list applied to the customer's email at `at` (core/suppression). */
  async function withSuppression(check: EntryCheck, flow: FlowDefinition, profile: Profile | undefined, at: number): Promise<EntryCheck> {
    if (!check.matched || !profile?.email) return check;
    return suppressedEntry(check, await store.suppressionsFor(profile.email, at), sendsTransactional(flow, (template) => deps.templates.category(template)), at);
  }

  async function flowVersion(flowId: string, version: number): Promise<FlowDefinition> {
    const key = `${flowId}@${version}`;
    let flow = flowCache.get(key);
    if (!flow) {
      flow = await store.getFlowVersion(flowId, version);
      if (!flow) throw ApplicationFailure.nonRetryable(`flow ${flowId} version ${version} is not registered in the store`, 'UnknownFlowVersion');
      flowCache.set(key, flow);
    }
    return flow;
  }

  async function recordArbitration(customerId: string, decisions: Array<DecisionLogEntry & { key: string }>): Promise<void> {
    if (decisions.length === 0) return;
    await store.recordDecisions(
      decisions.map((d) => ({
        key: d.key,
        customerId,
        at: d.at,
        flowId: d.flowId,
        flowVersion: d.flowVersion,
        outcome: d.outcome,
        reason: d.reason,
        eventMessageId: d.eventMessageId,
        workflowId: d.workflowId,
      })),
    );
    // A conversion is the run's outcome too; recording it here makes it visible even before the run stops.
    for (const d of decisions) {
      if (d.outcome === 'converted' && d.workflowId) await store.recordRunOutcome(d.workflowId, 'converted', d.at, d.eventMessageId);
    }
  }

  /** Per current flow with goal events, the customer's latest stored one (the newest GOAL_EVENTS_READ of those names). */
  async function lastExitsOf(customerId: string): Promise<Record<string, HandledExit>> {
    const flows = deps.currentFlows().filter((flow) => flow.exit.onEvents.length > 0);
    const names = [...new Set(flows.flatMap((flow) => flow.exit.onEvents.map((matcher) => matcher.event)))];
    if (names.length === 0) return {};
    const events = await store.eventsOf(customerId, { names, limit: GOAL_EVENTS_READ });
    const lastExits: Record<string, HandledExit> = {};
    for (const flow of flows) {
      const goal = events.find((event) => flow.exit.onEvents.some((matcher) => eventMatches(matcher, eventContextFacts(event))));
      if (goal) lastExits[flow.id] = { at: goal.timestamp, name: goal.name, messageId: goal.messageId };
    }
    return lastExits;
  }

  const policy = (): SendPolicy => deps.sendPolicy?.() ?? DEFAULT_SEND_POLICY;
  const log = deps.log ?? ((message: string) => console.log(message));

  // Offer codes: one per pool the template names, claimed under the delivery key before the render, so a retry of the
  // send renders the code it claimed before. The watch logs once per pool when a claim leaves it low, once when empty.
  const poolWatch = new OfferPoolWatch();
  const offerPoolsOf = (template: string): readonly string[] => (deps.templates.has(template) ? deps.templates.get(template).offerPools : []);
  async function claimOfferCodes(input: SendEmailInput): Promise<Map<string, string | null>> {
    const codes = new Map<string, string | null>();
    for (const pool of resolveOfferPools(offerPoolsOf(input.template), input.data)) {
      const claim = await store.claimOfferCode({ pool, deliveryKey: input.deliveryKey, customerId: input.customerId, at: Date.now() });
      codes.set(pool, claim.code);
      const warning = poolWatch.observe(claim.stats);
      if (warning) log(warning);
    }
    return codes;
  }

  // Best send time's population prior: everyone's recent opens and clicks, kept an hour (per worker) and per day of
  // flow time, so time-skipped tests and a long-running worker both read a fresh enough one.
  let prior: { day: number; readAt: number; hours: number[] } | null = null;
  async function populationPriorAt(now: number): Promise<number[]> {
    const day = Math.floor(now / 86_400_000);
    if (prior && prior.day === day && Date.now() - prior.readAt < PRIOR_KEPT_MS) return prior.hours;
    const rows = await store.engagementSince(ENGAGEMENT_SIGNALS, now - BEST_SEND_TIME_DEFAULTS.lookbackMs, PRIOR_EVENTS_READ);
    const byCustomer = new Map<string, { events: EngagementSample[]; timeZone: string }>();
    for (const row of rows) {
      const found = byCustomer.get(row.customerId) ?? {
        events: [],
        timeZone: chooseTimeZone({ profile: row.profileTimezone, latestEvent: row.eventTimezone, policy: policy().defaultTimezone }).timeZone,
      };
      found.events.push(row);
      byCustomer.set(row.customerId, found);
    }
    prior = { day, readAt: Date.now(), hours: populationPrior(byCustomer.values(), now) };
    return prior.hours;
  }

  /** What a stored send counts as under the caps; rows from before migration 0011 are read through the loaded flows. */
  function slotCounts(row: SendSlotRow): RecentSend {
    const flow = row.group === null ? deps.currentFlows().find((f) => f.id === row.flowId) : undefined;
    let category = row.category;
    if (category === null) {
      try {
        category = deps.templates.category(row.template);
      } catch {
        category = 'marketing'; // a template since removed: counted as marketing, the stricter reading
      }
    }
    return { at: row.at, group: row.group ?? flow?.group ?? '', topic: row.group === null ? (flow?.topic ?? null) : row.topic, category };
  }

  async function recordSendDecision(input: SendEmailInput, key: string, outcome: string, reason: string): Promise<void> {
    await store.recordDecisions([
      { key: `${input.deliveryKey}:${key}`, customerId: input.customerId, at: input.scheduledAt, flowId: input.flowId, flowVersion: input.flowVersion, outcome, reason, eventMessageId: null, workflowId: input.workflowId },
    ]);
  }

  /**
   * Quiet hours and best send time (marketing only: a receipt is not held back): when the send should go rather than
   * now, with the decision logged; null to go now.
   */
  async function sendTime(input: SendEmailInput, flow: FlowDefinition, profile: Profile): Promise<{ until: number; reason: string } | null> {
    const quiet = flow.quietHours !== undefined ? flow.quietHours : policy().quietHours;
    if (!quiet && !input.bestTime) return null;
    const now = input.scheduledAt;
    const label = `send ${input.nodeId} (${input.template})`;
    const zone = chooseTimeZone({
      profile: profile.timezone,
      latestEvent: latestEventTimeZone(await store.eventsOf(input.customerId, { limit: TIMEZONE_EVENTS_READ })),
      flow: flowTimeZone(flow),
      policy: policy().defaultTimezone,
    });
    const zoneText = `${zone.timeZone} (from the ${zone.source === 'utc' ? 'UTC fallback' : zone.source === 'event' ? "customer's latest events" : zone.source})`;
    const shift = quiet ? (at: number) => quietHoursEnd(at, quiet, zone.timeZone) : undefined;
    if (input.bestTime) {
      const engagement = await store.eventsOf(input.customerId, { names: [...ENGAGEMENT_SIGNALS], since: now - BEST_SEND_TIME_DEFAULTS.lookbackMs, limit: 1000 });
      const best = bestSendHour(engagement, zone.timeZone, now, await populationPriorAt(now));
      const planned = bestSendAt(now, input.bestTime.withinMs, best.hour, zone.timeZone, shift);
      const reason = `${label} scheduled for ${iso(planned.at)}: best time in ${zoneText}: ${best.reason}; ${planned.reason}`;
      await recordSendDecision(input, 'best-time', 'scheduled', reason);
      return planned.at > now ? { until: planned.at, reason } : null;
    }
    const end = quietHoursEnd(now, quiet, zone.timeZone);
    if (end <= now) return null;
    const local = DateTime.fromMillis(end, { zone: zone.timeZone }).toISO();
    const reason = `${label} deferred: quiet hours ${formatTimeOfDay(quiet!.from)}-${formatTimeOfDay(quiet!.to)} in ${zoneText}; goes at ${local}`;
    await recordSendDecision(input, `quiet:${input.attempt ?? 1}`, 'deferred', reason);
    return { until: end, reason };
  }

  /** Renders and delivers one email (see the sendEmail activity for the guarantees). */
  async function sendEmail(input: SendEmailInput): Promise<SendEmailResult> {
    const profile = await store.getProfile(input.customerId, { withSegments: true });
    const to = profile?.email;
    if (!to) return { status: 'skipped', reason: `customer ${input.customerId} has no email address` };
    // Checked again here: an address stored before identify validated it (a list, a group, CR/LF) must never reach
    // nodemailer, which would send to every address in it.
    const badAddress = mailboxProblem(to);
    if (badAddress !== undefined) {
      const reason = `customer ${input.customerId}'s stored email address is invalid: it ${badAddress}`;
      await recordSendDecision(input, 'skipped', 'skipped', `send ${input.nodeId} (${input.template}) skipped: ${reason}`);
      return { status: 'skipped', reason };
    }
    const context = profileContext(profile, input.scheduledAt);
    const category = deps.templates.category(input.template);
    if (category === 'marketing' && context.consent.email_marketing !== true) {
      // Consent is re-read at send time, so an unsubscribe (one-click, a webhook, an identify) cancels every
      // marketing send still pending for this customer; transactional sends go on.
      const reason = profile.consent.email_marketing?.source === 'unsubscribe' ? 'unsubscribed' : `customer ${input.customerId} has no email marketing consent`;
      await recordSendDecision(input, 'skipped', 'skipped', `send ${input.nodeId} (${input.template}) skipped: ${reason}`);
      return { status: 'skipped', reason };
    }
    // A topic the customer turned off on the preference center stops this flow's marketing sends, not the others'.
    // The topic comes from the run's own flow version: the one it was pinned to when it started.
    const caps = policy();
    // The run's pinned flow version gives the send's topic, group and priority; a transactional send needs it only when
    // a cap counts transactional email.
    const flow = category === 'marketing' || caps.caps.some((cap) => cap.transactional) ? await flowVersion(input.flowId, input.flowVersion) : null;
    const topic = category === 'marketing' ? (flow!.topic ?? null) : null;
    if (topic !== null && !topicIsOn(profile, topic)) {
      const reason = `customer turned off topic ${topic}`;
      await recordSendDecision(input, 'skipped', 'skipped', `send ${input.nodeId} (${input.template}) skipped: ${reason}`);
      return { status: 'skipped', reason };
    }
    // The suppression list, read for this address at the send's own (flow) time: a bounce or complaint recorded
    // since the run began stops it here; an expired soft-bounce entry no longer does.
    const suppressed = sendSuppression(await store.suppressionsFor(to, input.scheduledAt), category, input.scheduledAt);
    if (suppressed.blocked) {
      await recordSendDecision(input, 'skipped', 'skipped', `send ${input.nodeId} (${input.template}) skipped: ${suppressed.reason}`);
      return { status: 'skipped', reason: suppressed.reason };
    }
    // The flow's holdout: entered, arbitrated, measured, and sent no marketing email (a receipt still goes).
    if (category === 'marketing' && inHoldout(flow!.id, input.customerId, flow!.holdout)) {
      const reason = `customer is in the flow's ${Math.round(flow!.holdout! * 1000) / 10}% holdout`;
      await recordSendDecision(input, 'held-out', 'held_out', `send ${input.nodeId} (${input.template}) not sent: ${reason}`);
      return { status: 'skipped', reason };
    }
    if (category === 'marketing') {
      const later = await sendTime(input, flow!, profile);
      if (later) return { status: 'deferred', ...later };
    }
    // The variant rides in the click and open tokens: the click event names it, and the landing's utm_content does.
    const claims = { customerId: input.customerId, deliveryKey: input.deliveryKey, flowId: input.flowId, stepId: input.nodeId, ...(input.experiment ? { variant: input.experiment.variant } : {}) };
    const tracking = deps.tracking;
    // Links live for the TTL from the email's own date (its Date header), the same on every retry of the send.
    const expiresAt = tokenExpiry(input.scheduledAt, tracking?.tokenTtlMs);
    const unsubscribe = category === 'marketing' && tracking ? unsubscribeUrl(tracking.baseUrl(), tracking.secret, claims, expiresAt) : null;
    const preferences = category === 'marketing' && tracking ? preferencesUrl(tracking.baseUrl(), tracking.secret, claims, expiresAt) : null;
    const index = deps.catalog ? await deps.catalog.index() : null;
    // Without tracking consent (core/tracking-consent): no open pixel and plain links. UTM tags stay: they name the
    // campaign, not the reader. The unsubscribe and preference links are not tracking and stay too.
    const tracked = tracking !== null && trackingAllowed(profile, deps.trackingGrantedByDefault ?? true);
    const trackedUrl = tracking && tracked ? clickUrlSigner(tracking.baseUrl(), tracking.secret, claims, expiresAt) : null;
    const offerCodes = await claimOfferCodes(input);
    const options: RenderOptions = {
      offerCodes,
      // The link policy has passed every URL that gets here (core/link-policy); only http(s) ones are tracked.
      link: (url, _index, literal) => (trackedUrl && /^https?:\/\//i.test(url) ? trackedUrl(url, literal) : withUtm(url, { flowId: input.flowId, stepId: input.nodeId })),
      ...(tracking?.linkDomains ? { linkDomains: tracking.linkDomains } : {}),
      unsubscribeUrl: unsubscribe,
      preferencesUrl: preferences,
      openPixelUrl: tracking && tracked ? openPixelUrl(tracking.baseUrl(), tracking.secret, claims, expiresAt) : null,
      // The countdown image carries the deadline alone (no customer, no send), so it is not tracking and needs no consent.
      countdownUrl: tracking ? (untilMs) => countdownImageUrl(tracking.baseUrl(), tracking.secret, untilMs) : null,
      // "In the future" is judged when the email is rendered, not at the step's scheduled time.
      now: Date.now(),
      ...catalogRenderOptions(index),
    };
    const rendered = deps.templates.render(
      input.template,
      {
        ...context,
        event: { name: input.trigger.name, properties: input.trigger.properties, timestamp: input.trigger.timestamp },
        data: input.data,
        flow: { id: input.flowId, version: input.flowVersion, step: input.nodeId },
      },
      options,
    );
    const messageId = messageIdFor(input.deliveryKey);
    const transport = deps.smtp ? 'smtp' : 'outbox';
    const claim = {
      deliveryKey: input.deliveryKey,
      customerId: input.customerId,
      flowId: input.flowId,
      flowVersion: input.flowVersion,
      workflowId: input.workflowId,
      nodeId: input.nodeId,
      template: input.template,
      to,
      subject: rendered.subject,
      transport,
      scheduledAt: input.scheduledAt,
      fallbacks: rendered.fallbacks,
      ...(input.experiment ? { experimentId: input.experiment.id, variant: input.experiment.variant } : {}),
    } as const;
    // Frequency caps: the slot is reserved in the transaction that records the send (store/send-slots-store), so
    // concurrent runs and crashed workers cannot send past a cap. A send no cap counts takes the plain claim.
    const counts = flow ? { group: flow.group, topic: flow.topic ?? null, category } : null;
    let record: SendRecord;
    let claimed: boolean;
    if (!flow || !counts || !isCapped(caps, counts)) {
      ({ claimed, record } = await store.claimSend(claim));
    } else {
      const dueAt = input.dueAt ?? input.scheduledAt;
      const candidate = { ...counts, flowId: input.flowId, priority: flow.priority, deliveryKey: input.deliveryKey };
      const reserved = await store.reserveSend(
        { ...claim, ...counts },
        {
          since: input.scheduledAt - capLookbackMs(caps),
          dueAt,
          priority: flow.priority,
          decide: (recent, waiting) =>
            decideSlot(caps, { candidate, now: input.scheduledAt, dueAt, onCap: flow.onCap ?? null, deferMaxMs: flow.deferMaxMs ?? null }, recent.map(slotCounts), waiting),
        },
      );
      const label = `send ${input.nodeId} (${input.template})`;
      if (reserved.outcome === 'wait') {
        const reason = `${label} deferred: ${reserved.reason}`;
        await recordSendDecision(input, `deferred:${input.attempt ?? 1}`, 'deferred', reason);
        return { status: 'deferred', until: reserved.until, reason };
      }
      if (reserved.outcome === 'skip') {
        await recordSendDecision(input, 'skipped', 'skipped', `${label} skipped: ${reserved.reason}`);
        return { status: 'skipped', reason: reserved.reason };
      }
      record = reserved.record;
      claimed = reserved.outcome === 'claimed';
    }
    if (!claimed && record.status === 'sent') return { status: 'already_sent', messageId: record.messageId };
    const headers: Record<string, string> = {
      'X-Microflows-Delivery-Key': input.deliveryKey,
      'X-Microflows-Flow': `${input.flowId}@${input.flowVersion}`,
      // RFC 8058 one-click: mailbox providers POST to the link; marketing only.
      ...(unsubscribe ? listUnsubscribeHeaders(unsubscribe) : {}),
    };
    const from = rendered.from ?? deps.fromAddress;
    if (deps.smtp) {
      await deps.smtp.send({ from, to, subject: rendered.subject, html: rendered.html, text: rendered.text, messageId, date: new Date(input.scheduledAt), headers });
      await store.completeSend(input.deliveryKey, messageId, Date.now());
    } else {
      await store.deliverToOutbox(
        { deliveryKey: input.deliveryKey, to, from, subject: rendered.subject, html: rendered.html, text: rendered.text, headers, createdAt: input.scheduledAt },
        messageId,
      );
    }
    return { status: 'sent', messageId, transport };
  }

  return {
    /**
     * What a new arbiter needs of the customer's past: their runs, and per flow the latest stored goal (exit) event, so
     * a trigger that happened before it and arrives after it (another server, a retry) starts no run.
     */
    async loadEntryHistory(customerId: string): Promise<EntryHistory> {
      return { ...summarizeEntryHistory(await store.flowEntriesOf(customerId)), lastExits: await lastExitsOf(customerId) };
    },

    /** Evaluates a flow's entry condition for the customer now (a queued trigger, decided again later). */
    async checkEntry(input: { customerId: string; flowId: string; version: number; event: EventFacts }): Promise<EntryCheck> {
      const flow = await flowVersion(input.flowId, input.version);
      const profile = await store.getProfile(input.customerId, { withSegments: true });
      // Decided after its event: the list as it is now, so an entry made meanwhile (a bounce) counts.
      return withSuppression(evaluateEntry(flow, profile, input.event), flow, profile, Math.max(Date.now(), input.event.timestamp));
    },

    /** Persists what one arbitration step decided: the new run's entry (first, so the run number is taken) and the decisions. */
    /** Persists decisions of the arbiter that started no run (skips, suppressions, exits, ends). */
    async recordArbitration(input: { customerId: string; decisions: Array<DecisionLogEntry & { key: string }> }): Promise<void> {
      await recordArbitration(input.customerId, input.decisions);
    },

    /**
     * A flow run's first step: records its entry (taking its run number) and the decisions that admitted
     * it, and returns the flow version it is pinned to. One activity, so admission costs one round trip.
     */
    async beginRun(input: { customerId: string; workflowId: string; flowId: string; version: number; admission: RunAdmission }): Promise<FlowDefinition> {
      const { customerId, admission } = input;
      const flow = await flowVersion(input.flowId, input.version);
      // The holdout is decided by the customer's id alone (core/experiment-assignment), the same at every send; the
      // entry records it so reports can compare holdout runs with the others.
      const holdout = inHoldout(flow.id, customerId, flow.holdout);
      await store.recordFlowEntry({
        customerId,
        flowId: input.flowId,
        flowVersion: input.version,
        runNumber: admission.runNumber,
        workflowId: input.workflowId,
        enteredAt: admission.enteredAt,
        triggerMessageId: admission.triggerMessageId,
        ...(holdout ? { holdout: true } : {}),
      });
      await recordArbitration(customerId, admission.decisions);
      return flow;
    },

    /**
     * An ab_split step: the customer's variant. A decided experiment sends everyone to its winner; otherwise the
     * customer keeps the variant they were first given (re-entries and new flow versions included) while it still
     * exists, and a newcomer gets the one their hash falls in (core/experiment-assignment). A holdout customer walks
     * that one unrecorded: they are sent nothing, so they are no variant's recipient. Logged as `assigned`.
     */
    async assignVariant(input: {
      experimentId: string;
      customerId: string;
      flowId: string;
      version: number;
      stepId: string;
      workflowId: string;
      variants: Array<{ name: string; weight: number }>;
      at: number;
    }): Promise<{ variant: string; reason: string }> {
      const names = new Set(input.variants.map((v) => v.name));
      const experiment = await store.startExperiment({ experimentId: input.experimentId, flowId: input.flowId, stepId: input.stepId, startedAt: input.at });
      let chosen: { variant: string; reason: string };
      if (experiment.state === 'decided' && experiment.winner !== null && names.has(experiment.winner)) {
        chosen = { variant: experiment.winner, reason: `the experiment decided for ${experiment.winner}${experiment.decidedAt === null ? '' : ` on ${iso(experiment.decidedAt)}`}: everyone gets the winner` };
      } else {
        const kept = await store.assignmentOf(input.experimentId, input.customerId);
        const flow = await flowVersion(input.flowId, input.version);
        const { variant, bucket } = chooseVariant(input.experimentId, input.customerId, input.variants);
        if (kept && names.has(kept.variant)) {
          chosen = { variant: kept.variant, reason: `kept from the first assignment (${iso(kept.assignedAt)})` };
        } else if (inHoldout(flow.id, input.customerId, flow.holdout)) {
          // A holdout customer is sent no variant: walking one is not being in the experiment, so no assignment is
          // recorded, and the variants' recipients (the winner check, the reports' `assigned`) are the people mailed.
          chosen = { variant, reason: `bucket ${bucket.toFixed(4)}, not recorded: the customer is in the flow's holdout and is sent nothing` };
        } else {
          const stored = await store.recordAssignment({
            experimentId: input.experimentId,
            customerId: input.customerId,
            variant,
            assignedAt: input.at,
            flowId: input.flowId,
            flowVersion: input.version,
            stepId: input.stepId,
            workflowId: input.workflowId,
          });
          chosen = stored.variant === variant
            ? { variant, reason: `bucket ${bucket.toFixed(4)} of the weights ${input.variants.map((v) => `${v.name} ${v.weight}`).join(', ')}` }
            : { variant: stored.variant, reason: 'assigned by another run of this customer a moment before' };
        }
      }
      await store.recordDecisions([
        {
          key: `${input.workflowId}/${input.stepId}:assigned`,
          customerId: input.customerId,
          at: input.at,
          flowId: input.flowId,
          flowVersion: input.version,
          outcome: 'assigned',
          reason: `ab_split ${input.stepId} (experiment ${input.experimentId}): variant ${chosen.variant}: ${chosen.reason}`,
          eventMessageId: null,
          workflowId: input.workflowId,
        },
      ]);
      return chosen;
    },

    async finishRun(input: { workflowId: string; outcome: string; at: number; conversionMessageId: string | null }): Promise<void> {
      await store.recordRunOutcome(input.workflowId, input.outcome, input.at, input.conversionMessageId);
      // Its deferred sends will not ask again: they no longer hold a place in the queue for a slot.
      await store.releaseSendWaits(input.workflowId);
    },

    async customerTimezone(customerId: string): Promise<string | null> {
      return (await store.getProfile(customerId))?.timezone ?? null;
    },

    /** `at` is the flow's (workflow) time: time-relative fields such as behavior_score are read as of then. */
    async evaluateForCustomer(input: { customerId: string; condition: Condition; event: EventFacts; at?: number }): Promise<boolean> {
      const profile = await store.getProfile(input.customerId, { withSegments: true });
      return compileCondition(input.condition)({ ...profileContext(profile, input.at ?? Date.now()), ...eventContext(input.event) });
    },

    async updateProfile(input: { customerId: string; set: Record<string, unknown>; addTags: string[]; removeTags: string[] }): Promise<void> {
      await store.updateProfile(input.customerId, { set: input.set, addTags: input.addTags, removeTags: input.removeTags });
    },

    /**
     * Renders and delivers one email, at most once per delivery key (workflow id + step). The outbox
     * write is atomic with the ledger; over SMTP a crash between hand-off and ledger update resends
     * with the same Message-ID, so the receiver sees one message.
     */
    async sendEmail(input: SendEmailInput): Promise<SendEmailResult> {
      const context = Context.current();
      context.heartbeat();
      const heartbeat = setInterval(() => context.heartbeat(), SEND_HEARTBEAT_EVERY_MS);
      try {
        const result = await sendEmail(input);
        // A skipped send gives back the offer codes it (or an attempt before it) claimed; the store keeps those of a
        // send in the ledger, which may have gone out with them.
        if (result.status === 'skipped' && offerPoolsOf(input.template).length > 0) await store.releaseOfferCodes(input.deliveryKey);
        return result;
      } finally {
        clearInterval(heartbeat);
      }
    },

    /** The segment sweep's first step: RFM quintiles recomputed when stale (moving cut points schedule every buyer). */
    async refreshRfm(input: { now: number }): Promise<boolean> {
      return deps.segments ? deps.segments.refreshRfm(input.now) : false;
    },

    /** One page of the segment sweep: customers whose next check has come, evaluated as of `now`. */
    async sweepSegments(input: { now: number; limit: number; after: SweepPage['next'] }): Promise<SweepPage> {
      if (!deps.segments) return { evaluated: 0, changes: 0, failed: 0, next: null };
      Context.current().heartbeat();
      return deps.segments.sweepPage(input.now, input.limit, input.after);
    },

    /** The segment sweep's last step: every time-based change up to `now` is applied (the report shows it). */
    async markSegmentsSwept(input: { now: number }): Promise<void> {
      await store.markSegmentsSwept(input.now);
    },

    /**
     * One page of the event retention purge (the inactivity sweep's last step): events older than `now` minus the
     * retention, of up to `limit` customers after `after`. Each customer's purge commits on its own, so a retry redoes
     * only what did not.
     */
    async purgeExpiredEvents(input: { now: number; after: string | null; limit: number }): Promise<{ purged: number; customers: number; next: string | null }> {
      if (!deps.eventRetentionMs) return { purged: 0, customers: 0, next: null };
      Context.current().heartbeat(input.after);
      return store.purgeEventsBefore(input.now - deps.eventRetentionMs, input.limit, input.after);
    },

    /** One page of the inactivity sweep: signals customers whose "no X for N days" came true. */
    async sweepInactivity(input: { now: number; cursor: string | null; pageSize: number; sweepId: string }): Promise<{ signalled: number; nextCursor: string | null }> {
      if (!deps.signals) throw ApplicationFailure.nonRetryable('the sweep needs a Temporal client: the worker was built without one', 'SweepMisconfigured');
      let signalled = 0;
      const page = await store.inactiveCustomers({
        triggers: deps.currentFlows().flatMap((f) => (f.trigger.kind === 'inactivity' ? [{ flowId: f.id, event: f.trigger.event, before: input.now - f.trigger.forMs }] : [])),
        cursor: input.cursor,
        limit: input.pageSize,
      });
      const flows = new Map(deps.currentFlows().map((f) => [f.id, f]));
      for (const hit of page.customers) {
        const flow = flows.get(hit.flowId);
        if (!flow) continue;
        const facts: EventFacts = {
          messageId: `inactivity:${hit.flowId}:${hit.customerId}:${hit.lastEventAt}`,
          name: null,
          type: 'track',
          properties: { inactive_since: hit.lastEventAt, sweep: input.sweepId },
          timestamp: input.now,
        };
        const profile = await store.getProfile(hit.customerId, { withSegments: true });
        const fired = fireTrigger(flow, profile, facts);
        const event: CustomerEventSignalInput = { ...facts, triggers: [{ ...fired, entry: await withSuppression(fired.entry, flow, profile, input.now) }] };
        await signalCustomerEvent(deps.signals, hit.customerId, event);
        signalled += 1;
        Context.current().heartbeat(hit.customerId);
      }
      return { signalled, nextCursor: page.nextCursor };
    },
  };
}
