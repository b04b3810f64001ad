// Segment validation for the command line: every segments/<id>.yaml parsed, the id matching the file name, and every
// in_segment naming a segment that exists — each problem with file:line.
import fs from 'node:fs';
import path from 'node:path';
import { InvalidFileError, type FileProblem } from '../core/errors';
import { parseSegmentFile, type SegmentDefinition } from '../core/segment-definition';
import { segmentReferences } from '../core/segment-rules';

export interface CheckedSegments {
  segments: SegmentDefinition[];
  problems: FileProblem[];
}

/** Checks a segments folder (a missing one holds no segments). */
export function checkSegments(dir: string): CheckedSegments {
  if (!fs.existsSync(dir)) return { segments: [], problems: [] };
  const segments: SegmentDefinition[] = [];
  const problems: FileProblem[] = [];
  const sources = new Map<string, string>();
  for (const name of fs.readdirSync(dir).filter((f) => f.endsWith('.yaml') || f.endsWith('.yml')).sort()) {
    const file = path.join(dir, name);
    const source = fs.readFileSync(file, 'utf8');
    const result = parseSegmentFile(source, file);
    problems.push(...result.problems);
    if (!result.segment) continue;
    const expected = name.replace(/\.ya?ml$/, '');
    if (result.segment.id !== expected) {
      problems.push({ file, line: 1 + source.split('\n').findIndex((l) => /^id\s*:/.test(l)), path: 'id', severity: 'error', message: `the id "${result.segment.id}" must match the file name: rename the file ${result.segment.id}.yaml or set id: ${expected}` });
      continue;
    }
    segments.push(result.segment);
    sources.set(result.segment.id, source);
  }
  const known = new Set(segments.map((s) => s.id));
  for (const segment of segments) {
    for (const reference of segmentReferences(segment.rule)) {
      if (known.has(reference)) continue;
      const lines = sources.get(segment.id)!.split('\n');
      const line = lines.findIndex((l) => new RegExp(`in_segment\\s*:\\s*["']?${reference.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\b`).test(l)) + 1;
      problems.push({ file: segment.file, line: line || undefined, severity: 'error', message: `in_segment: no segment "${reference}" in ${dir}; known: ${[...known].sort().join(', ')}` });
    }
  }
  return { segments, problems };
}

/** The segment ids a flow may name: the segment files' names in `dir` (none when it does not exist). */
export function segmentIdsIn(dir: string): Set<string> {
  if (!fs.existsSync(dir)) return new Set();
  return new Set(fs.readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).map((f) => f.replace(/\.ya?ml$/, '')));
}

/** The valid segments of `dir`, or an InvalidFileError naming every problem (what start refuses to run with). */
export function loadSegments(dir: string): SegmentDefinition[] {
  const { segments, problems } = checkSegments(dir);
  if (problems.some((p) => p.severity === 'error')) throw new InvalidFileError(problems);
  return segments;
}
