// The sender's brand settings (brand.yaml): the name and postal address every marketing email's footer shows
// (CAN-SPAM asks for the address), and the labels the preference center gives the flows' topics. Pure: the caller
// reads the file; this parses the text and reports every problem with file:line and the field.
import { isMap } from 'yaml';
import { InvalidFileError } from './errors';
import type { FileProblem } from './errors';
import { TOPIC_ID } from './topic-consent';
import { readYaml } from './yaml-reader';

/** What the preference center shows for one topic. */
export interface TopicLabel {
  label: string;
  description: string | null;
}

export interface Brand {
  /** The sender as customers know it, e.g. "Harbour & Hide". */
  name: string;
  /** The sender's postal address, on one line; every marketing email shows it. */
  postalAddress: string;
  /** Labels of topics by topic id; a topic without one shows its id humanized (topicLabel). */
  topics: Record<string, TopicLabel>;
}

const BRAND_KEYS = ['name', 'postal_address', 'topics'];
const TOPIC_KEYS = ['label', 'description'];

/** Addresses are written over several lines in YAML; a footer line and a validation check want them on one. */
function oneLine(text: string): string {
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .join(', ')
    .replace(/\s+/g, ' ');
}

/** Parses brand.yaml; throws InvalidFileError listing every problem (file:line, field, what to write). */
export function parseBrand(source: string, file: string): Brand {
  const { brand, problems } = checkBrand(source, file);
  if (!brand) throw new InvalidFileError(problems);
  return brand;
}

/** Like parseBrand, but returns the problems instead of throwing. */
export function checkBrand(source: string, file: string): { brand?: Brand; problems: FileProblem[] } {
  const { reader: r, contents, parsed } = readYaml(source, file);
  if (!parsed) return { problems: r.sortedProblems() };
  const root = r.resolve(contents);
  if (r.isEmpty(root)) {
    r.problemAt(0, '', 'empty file: brand.yaml is a map with name and postal_address (and optionally topics)', 'error');
    return { problems: r.sortedProblems() };
  }
  const top = r.map(root, '', 'brand.yaml', BRAND_KEYS);
  if (!top) return { problems: r.sortedProblems() };
  const name = r.text(r.require(top, 'name', root, '', 'the sender\'s name as customers know it, e.g. "name: Harbour & Hide"'), 'name');
  const address = r.text(
    r.require(top, 'postal_address', root, '', 'the sender\'s postal address, which every marketing email must show (CAN-SPAM), e.g. "postal_address: 12 Quay Street, Bristol BS1 4DJ, United Kingdom"'),
    'postal_address',
  );
  const topics: Record<string, TopicLabel> = {};
  const topicsEntry = top.get('topics');
  if (topicsEntry && !r.isEmpty(topicsEntry.value)) {
    if (!isMap(topicsEntry.value)) {
      r.error(topicsEntry.value, 'topics', 'topics must be a map of topic id to { label, description }, e.g. "topics: { cart-reminders: { label: Cart reminders } }"');
    } else {
      for (const pair of topicsEntry.value.items) {
        const keyNode = r.resolve(pair.key);
        const id = keyNode && 'value' in keyNode ? String((keyNode as { value: unknown }).value) : '';
        const path = `topics.${id}`;
        if (!TOPIC_ID.test(id)) {
          r.error(keyNode, path, `topic id "${id}" must be kebab-case like the flows' "topic:", e.g. cart-reminders`);
          continue;
        }
        const value = r.resolve(pair.value);
        const fields = r.map(value, path, `topic "${id}"`, TOPIC_KEYS, keyNode);
        if (!fields) continue;
        const label = r.text(r.require(fields, 'label', value, path, 'what the preference center calls it, e.g. "label: Cart reminders"'), `${path}.label`);
        const description = fields.has('description') ? r.text(fields.get('description'), `${path}.description`) : undefined;
        if (label !== undefined) topics[id] = { label: label.trim(), description: description?.trim() ?? null };
      }
    }
  }
  const problems = r.sortedProblems();
  if (problems.some((p) => p.severity === 'error') || name === undefined || address === undefined) return { problems };
  return { brand: { name: name.trim(), postalAddress: oneLine(address), topics }, problems };
}

/**
 * The brand a marketing template is checked and previewed with when the project has none (unit tests, a template
 * checked on its own, a preview before brand.yaml exists).
 */
export const SAMPLE_BRAND: Brand = { name: 'Sample Shop', postalAddress: '1 Sample Street, Sampletown SA1 1AA', topics: {} };

/** `cart-reminders` → `Cart reminders`: what a topic is called when brand.yaml gives it no label. */
export function humanizeTopic(id: string): string {
  const words = id.split('-').join(' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** The label and description the preference center shows for a topic. */
export function topicLabel(brand: Brand | null, id: string): TopicLabel {
  return brand?.topics[id] ?? { label: humanizeTopic(id), description: null };
}

/** What templates read as `brand.*`. */
export function brandTemplateData(brand: Brand): { name: string; postal_address: string } {
  return { name: brand.name, postal_address: brand.postalAddress };
}
