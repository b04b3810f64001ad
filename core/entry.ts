// Evaluates a flow's entry condition for a customer and an event: the arbiter's input, computed where
// the profile already is (at ingest, in the sweep) so the arbiter need not read it again. Pure.
import { compileCondition, type ConditionTester } from './conditions';
import type { FlowDefinition } from './flow-types';
import { policyOf, type FlowPolicy } from './flow-types';
import { profileContext, type Profile } from './profile';
import { eventContext, type EventFacts } from './triggers';

export interface EntryCheck {
  matched: boolean;
  reason: string;
}

/** A trigger that fired, with what the arbiter needs to decide it: the flow's policy and its entry check. */
export interface FiredTrigger {
  policy: FlowPolicy;
  entry: EntryCheck;
}

const testers = new WeakMap<object, ConditionTester>();

function tester(condition: NonNullable<FlowDefinition['requires']>, path: string): ConditionTester {
  let compiled = testers.get(condition);
  if (!compiled) {
    compiled = compileCondition(condition, path);
    testers.set(condition, compiled);
  }
  return compiled;
}

/** Whether the flow's reason (`requires`) holds for the customer now; flows without one always hold. */
export function evaluateRequires(flow: Pick<FlowDefinition, 'requires'>, profile: Profile | undefined, event: EventFacts, at: number): EntryCheck {
  const requires = flow.requires;
  if (!requires) return { matched: true, reason: 'no requires' };
  const matched = tester(requires, 'requires')({ ...profileContext(profile, at), ...eventContext(event) });
  return { matched, reason: `requires ${JSON.stringify(requires)} is ${matched}` };
}

/** The entry check: `entry.when`, and the flow's reason (`requires`), which must hold at entry as at every send. */
export function evaluateEntry(flow: FlowDefinition, profile: Profile | undefined, event: EventFacts): EntryCheck {
  const when = flow.entry.when;
  if (!when) return flow.requires ? evaluateRequires(flow, profile, event, event.timestamp) : { matched: true, reason: 'no entry condition' };
  const matched = tester(when, 'entry.when')({ ...profileContext(profile, event.timestamp), ...eventContext(event) });
  const whenReason = `entry.when ${JSON.stringify(when)} is ${matched}`;
  if (!matched || !flow.requires) return { matched, reason: whenReason };
  const reason = evaluateRequires(flow, profile, event, event.timestamp);
  return reason.matched ? { matched: true, reason: `${whenReason}; ${reason.reason}` } : reason;
}

export function fireTrigger(flow: FlowDefinition, profile: Profile | undefined, event: EventFacts): FiredTrigger {
  return { policy: policyOf(flow), entry: evaluateEntry(flow, profile, event) };
}
