// Whether a send may take a slot under the frequency caps now, wait for one, or give up: the decision the store makes
// inside the transaction that reserves the send (store/send-slots-store), so two runs sending to one customer at the
// same moment see each other's reservation. Pure: the customer's recent sends and waiting sends are passed in.
//
// A capped send waits (on_cap: defer) until the caps have room, at most defer.max after it was first due. When room
// appears, the waiting sends that compete for it (those counted by a cap this send is counted by) take it in priority
// order (core/send-policy orderWaitingSends): a lower-priority send steps back for a minute while a higher one that
// is due takes the slot, then finds the caps full and waits for the next one.
import { formatDuration } from './duration';
import { capMatches, capOutcome, evaluateCaps, orderWaitingSends, type CapCandidate, type OnCap, type RecentSend, type SendPolicy } from './send-policy';
import type { TemplateCategory } from './suppression';

/** A waiting send that has not retried this long after its time is taken for gone (its run ended, its worker is behind). */
export const WAIT_STALE_AFTER_MS = 5 * 60_000;
/** How long a send steps back while a higher-priority waiting send takes the slot. */
export const YIELD_RETRY_MS = 60_000;

/** The send asking for a slot. */
export interface SlotCandidate extends CapCandidate {
  deliveryKey: string;
}

/** A send a cap deferred, as stored while it waits. */
export interface WaitingSlot {
  deliveryKey: string;
  flowId: string;
  priority: number;
  /** when it was first due */
  dueAt: number;
  /** when it retries */
  until: number;
  group: string;
  topic: string | null;
  category: TemplateCategory;
}

export type SlotVerdict = { action: 'claim' } | { action: 'wait'; until: number; reason: string } | { action: 'skip'; reason: string };

export interface SlotRequest {
  candidate: SlotCandidate;
  /** The flow time now, epoch ms. */
  now: number;
  /** When the send was first due: defer.max counts from here, across every deferral. */
  dueAt: number;
  /** The flow's overrides of the policy's on_cap and defer.max. */
  onCap?: OnCap | null;
  deferMaxMs?: number | null;
}

const iso = (at: number): string => new Date(at).toISOString();

function describeCap(policy: Pick<SendPolicy, 'caps'>, name: string): string {
  const cap = policy.caps.find((c) => c.name === name);
  return cap ? `cap ${name} (${cap.max} per ${formatDuration(cap.perMs)})` : `cap ${name}`;
}

/** Whether some cap counts both sends, so they compete for the same slots. */
function competes(policy: Pick<SendPolicy, 'caps'>, a: Pick<RecentSend, 'group' | 'topic' | 'category'>, b: Pick<RecentSend, 'group' | 'topic' | 'category'>): boolean {
  return policy.caps.some((cap) => capMatches(cap, a) && capMatches(cap, b));
}

/** Whether any cap of the policy counts this send; when none does the send never needs a slot. */
export function isCapped(policy: Pick<SendPolicy, 'caps'>, send: Pick<RecentSend, 'group' | 'topic' | 'category'>): boolean {
  return policy.caps.some((cap) => capMatches(cap, send));
}

/**
 * The slot decision for `request` given the customer's `recent` sends (reserved ones included, this send's own
 * never: a retry of a reserved send does not ask again) and the sends `waiting` for a slot (this one's own row, if
 * any, is ignored).
 */
export function decideSlot(policy: Pick<SendPolicy, 'caps' | 'onCap' | 'deferMaxMs'>, request: SlotRequest, recent: readonly RecentSend[], waiting: readonly WaitingSlot[]): SlotVerdict {
  const { candidate, now, dueAt } = request;
  const deferMaxMs = request.deferMaxMs ?? policy.deferMaxMs;
  const decision = evaluateCaps(policy, candidate, recent, now);
  if (!decision.allowed) {
    const outcome = capOutcome(decision, { onCap: request.onCap ?? null, deferMaxMs, dueAt }, policy);
    const full = `${describeCap(policy, decision.cap)} is full`;
    if (outcome.action === 'defer') return { action: 'wait', until: outcome.until, reason: `${full}; next slot at ${iso(outcome.until)}` };
    if (outcome.action === 'skip' && outcome.reason === 'on_cap_skip') return { action: 'skip', reason: `${full} and the flow's on_cap is skip` };
    return { action: 'skip', reason: `${full}; its next slot, ${iso(decision.nextSlotAt)}, is more than defer.max ${formatDuration(deferMaxMs)} after the send was due (${iso(dueAt)})` };
  }
  // Room: but a higher-priority send that waits for the same slot and is due now goes first.
  const rivals = waiting.filter((w) => w.deliveryKey !== candidate.deliveryKey && w.until <= now && now - w.until < WAIT_STALE_AFTER_MS && competes(policy, w, candidate));
  if (rivals.length === 0) return { action: 'claim' };
  const self = { id: candidate.deliveryKey, priority: candidate.priority, dueAt, flowId: candidate.flowId, until: now };
  const first = orderWaitingSends([self, ...rivals.map((w) => ({ id: w.deliveryKey, priority: w.priority, dueAt: w.dueAt, flowId: w.flowId, until: w.until }))])[0]!;
  if (first.id === self.id) return { action: 'claim' };
  const until = now + YIELD_RETRY_MS;
  const shared = policy.caps.find((cap) => capMatches(cap, candidate) && rivals.some((w) => w.deliveryKey === first.id && capMatches(cap, w)))!;
  const why = `${describeCap(policy, shared.name)}: its next slot goes first to flow ${first.flowId} (priority ${first.priority} over ${candidate.priority}), which waits for it`;
  if ((request.onCap ?? policy.onCap) === 'skip') return { action: 'skip', reason: `${why}, and the flow's on_cap is skip` };
  if (until - dueAt > deferMaxMs) return { action: 'skip', reason: `${why}; waiting longer would pass defer.max ${formatDuration(deferMaxMs)} after the send was due (${iso(dueAt)})` };
  return { action: 'wait', until, reason: `${why}; retry at ${iso(until)}` };
}
