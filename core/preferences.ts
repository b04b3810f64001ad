// The preference center's choices: which topics a customer can choose (those of the loaded flows, labelled by the
// brand), and what a submitted form changes against their current choices. Pure.
import { topicLabel, type Brand } from './brand';
import type { FlowDefinition } from './flow-types';
import type { Profile } from './profile';
import { topicIsOn, type PreferencesUpdate } from './topic-consent';

export interface TopicChoice {
  id: string;
  label: string;
  description: string | null;
  on: boolean;
}

/** The topics the page offers: one per topic the loaded flows declare, labelled by the brand, sorted by label. */
export function topicChoices(flows: readonly Pick<FlowDefinition, 'topic'>[], brand: Brand | null, profile: Pick<Profile, 'consent'> | undefined): TopicChoice[] {
  const ids = [...new Set(flows.map((flow) => flow.topic).filter((topic): topic is string => typeof topic === 'string'))];
  return ids.map((id) => ({ id, ...topicLabel(brand, id), on: topicIsOn(profile, id) })).sort((a, b) => a.label.localeCompare(b.label));
}

/** What the page's form said: `leave` (the "unsubscribe from everything" button), or the topics ticked. */
export type PreferencesForm = { action: 'leave' } | { action: 'save'; ticked: readonly string[]; resubscribe: boolean };

/**
 * The change a submitted form makes, against the customer's current choices: only topics whose state changes are
 * named (so the consent trail records real changes); ticked ids that are not offered are ignored (a form is input).
 * null: nothing changes.
 */
export function preferencesChange(form: PreferencesForm, choices: readonly TopicChoice[], emailMarketing: boolean | undefined): PreferencesUpdate | null {
  if (form.action === 'leave') return emailMarketing === false ? null : { topics: {}, unsubscribe_all: true };
  const ticked = new Set(form.ticked);
  const topics: Record<string, boolean> = {};
  for (const choice of choices) {
    const wanted = ticked.has(choice.id);
    if (wanted !== choice.on) topics[choice.id] = wanted;
  }
  const resubscribe = form.resubscribe && emailMarketing !== true;
  if (Object.keys(topics).length === 0 && !resubscribe) return null;
  return { topics, ...(resubscribe ? { resubscribe: true } : {}) };
}
