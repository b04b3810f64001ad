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

export function evaluateEntry(flow: FlowDefinition, profile: Profile | undefined, event: EventFacts): EntryCheck {
  const when = flow.entry.when;
  if (!when) return { matched: true, reason: 'no entry condition' };
  let tester = testers.get(when);
  if (!tester) {
    tester = compileCondition(when, 'entry.when');
    testers.set(when, tester);
  }
  const matched = tester({ ...profileContext(profile, event.timestamp), ...eventContext(event) });
  return { matched, reason: `entry.when ${JSON.stringify(when)} is ${matched}` };
}

export function fireTrigger(flow: FlowDefinition, profile: Profile | undefined, event: EventFacts): FiredTrigger {
  return { policy: policyOf(flow), entry: evaluateEntry(flow, profile, event) };
}
