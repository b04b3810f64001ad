// A segment file (segments/<id>.yaml): a named audience written as a condition in the project's one condition
// language over a customer's profile view (profile.*, consent.*), e.g. "customers who browsed shoes and never
// bought". Templates are previewed for a synthetic typical member of one (`microflows preview --as`). Pure.
import type { Condition } from './conditions';
import type { FileProblem } from './errors';
import { readYaml } from './yaml-reader';

export interface SegmentDefinition {
  id: string;
  description: string | null;
  /** Who is in: a condition on profile.* and consent.* (core/conditions). */
  when: Condition;
  file: string;
}

const KEYS = ['id', 'description', 'when'] as const;

/** Reads one segment file; every problem comes with file:line:col. */
export function parseSegmentFile(source: string, file: string): { segment: SegmentDefinition | null; problems: FileProblem[] } {
  const { reader: r, contents, parsed } = readYaml(source, file);
  if (!parsed) return { segment: null, problems: r.sortedProblems() };
  const root = r.resolve(contents);
  if (r.isEmpty(root)) {
    r.problemAt(0, '', 'empty file: a segment file is a map with id and when', 'error');
    return { segment: null, problems: r.sortedProblems() };
  }
  const top = r.map(root, '', 'a segment file', KEYS);
  if (!top) return { segment: null, problems: r.sortedProblems() };
  const id = r.text(r.require(top, 'id', root, '', 'the segment id, kebab-case, e.g. "id: shoe-browsers"'), 'id');
  if (id !== undefined && !/^[a-z0-9]+(-[a-z0-9]+)*$/.test(id)) r.error(top.get('id')?.value, 'id', `"${id}" is not kebab-case: use lower-case words joined by "-", e.g. shoe-browsers`);
  const description = top.has('description') ? (r.text(top.get('description'), 'description') ?? null) : null;
  const when = r.condition(r.require(top, 'when', root, '', 'who is in, e.g. "when: { profile.orders_count: { gte: 2 } }"'), false);
  const problems = r.sortedProblems();
  if (problems.some((p) => p.severity === 'error') || id === undefined || when === undefined) return { segment: null, problems };
  return { segment: { id, description, when, file }, problems };
}
