// The segment report: against over-fragmentation and staleness. Each segment's size, the overlap between every
// pair, the segments too small to matter, the ones no flow uses, and when each was last swept. Pure: the store's
// counts, the definitions and the flows come in.
import type { FlowDefinition } from './flow-types';
import { segmentReferences, type SegmentRule } from './segment-rules';

/** Condition paths whose values name segments: a Segment Entered event's segment, and the profile's segments. */
const SEGMENT_PATHS = new Set(['event.properties.segment_id', 'profile.segments']);

function stringsIn(value: unknown, into: Set<string>): void {
  if (typeof value === 'string') into.add(value);
  else if (Array.isArray(value)) value.forEach((v) => stringsIn(v, into));
  else if (value && typeof value === 'object') Object.values(value).forEach((v) => stringsIn(v, into));
}

function collect(value: unknown, into: Set<string>): void {
  if (Array.isArray(value)) value.forEach((v) => collect(v, into));
  else if (value && typeof value === 'object') {
    for (const [key, inner] of Object.entries(value)) {
      if (SEGMENT_PATHS.has(key)) stringsIn(inner, into);
      else collect(inner, into);
    }
  }
}

/** The segments a flow names: its trigger, exits, entry condition, and its steps' splits and waits. */
export function segmentsUsedBy(flow: Pick<FlowDefinition, 'trigger' | 'entry' | 'exit' | 'nodes'>): string[] {
  const found = new Set<string>();
  collect([flow.trigger, flow.entry, flow.exit, flow.nodes], found);
  return [...found].sort();
}

export interface SegmentReportInput {
  segments: Array<{ id: string; description: string | null; rule: SegmentRule }>;
  sizes: Record<string, number>;
  overlap: Array<{ a: string; b: string; shared: number }>;
  states: Array<{ segmentId: string; definedAt: number; sweptAt: number | null }>;
  flows: Array<Pick<FlowDefinition, 'id' | 'trigger' | 'entry' | 'exit' | 'nodes'>>;
  minSize: number;
}

export interface SegmentReportRow {
  id: string;
  description: string | null;
  size: number;
  /** Fewer members than the minimum size: too small to matter (merge it, or widen its rules). */
  tooSmall: boolean;
  /** Flows that start on it, wait for it, split on it or exit on it. */
  usedByFlows: string[];
  /** Segments whose rules say in_segment: <this>. */
  usedBySegments: string[];
  /** No flow uses it, directly or through another segment. */
  unused: boolean;
  /** When the current definition was loaded (its members were all re-evaluated from then on). */
  definedAt: number | null;
  /** The last sweep that applied every time-based change (null: none yet since the definition was loaded). */
  lastEvaluatedAt: number | null;
}

export interface SegmentReport {
  minSize: number;
  segments: SegmentReportRow[];
  /** Members shared: overlap.matrix[i][j] for overlap.ids[i] and overlap.ids[j]; the diagonal is each size. */
  overlap: { ids: string[]; matrix: number[][] };
}

export function segmentReport(input: SegmentReportInput): SegmentReport {
  const ids = input.segments.map((s) => s.id);
  const states = new Map(input.states.map((s) => [s.segmentId, s]));
  const usedByFlows = new Map<string, string[]>(ids.map((id) => [id, []]));
  for (const flow of input.flows) for (const id of segmentsUsedBy(flow)) usedByFlows.get(id)?.push(flow.id);
  const usedBySegments = new Map<string, string[]>(ids.map((id) => [id, []]));
  for (const segment of input.segments) for (const id of new Set(segmentReferences(segment.rule))) usedBySegments.get(id)?.push(segment.id);
  // Used: a flow names it, or a used segment is built on it.
  const used = new Set<string>(ids.filter((id) => usedByFlows.get(id)!.length > 0));
  for (let grew = true; grew; ) {
    grew = false;
    for (const segment of input.segments) {
      if (!used.has(segment.id)) continue;
      for (const id of segmentReferences(segment.rule)) {
        if (used.has(id) || !usedByFlows.has(id)) continue;
        used.add(id);
        grew = true;
      }
    }
  }
  const index = new Map(ids.map((id, i) => [id, i]));
  const matrix = ids.map((a) => ids.map((b) => (a === b ? (input.sizes[a] ?? 0) : 0)));
  for (const { a, b, shared } of input.overlap) {
    const i = index.get(a);
    const j = index.get(b);
    if (i === undefined || j === undefined) continue;
    matrix[i]![j] = shared;
    matrix[j]![i] = shared;
  }
  return {
    minSize: input.minSize,
    segments: input.segments.map((s) => {
      const size = input.sizes[s.id] ?? 0;
      const state = states.get(s.id);
      return {
        id: s.id,
        description: s.description,
        size,
        tooSmall: size < input.minSize,
        usedByFlows: usedByFlows.get(s.id)!.sort(),
        usedBySegments: usedBySegments.get(s.id)!.sort(),
        unused: !used.has(s.id),
        definedAt: state?.definedAt ?? null,
        lastEvaluatedAt: state?.sweptAt ?? null,
      };
    }),
    overlap: { ids, matrix },
  };
}

function iso(at: number | null): string {
  return at === null ? 'never' : new Date(at).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The report as text: one line per segment with its flags, then the overlap matrix. */
export function formatSegmentReport(report: SegmentReport): string {
  const lines: string[] = [];
  const width = Math.max(7, ...report.segments.map((s) => s.id.length));
  lines.push(`${'segment'.padEnd(width)}  ${'members'.padStart(8)}  last swept            used by`);
  for (const s of report.segments) {
    const flags = [s.tooSmall ? `TOO SMALL (< ${report.minSize})` : null, s.unused ? 'UNUSED (no flow uses it)' : null].filter(Boolean).join(', ');
    const users = [...s.usedByFlows.map((f) => `flow ${f}`), ...s.usedBySegments.map((id) => `segment ${id}`)].join(', ') || '-';
    lines.push(`${s.id.padEnd(width)}  ${String(s.size).padStart(8)}  ${iso(s.lastEvaluatedAt).padEnd(20)}  ${users}${flags ? `  ${flags}` : ''}`);
  }
  lines.push('', 'overlap (members in both; the diagonal is the size):');
  const { ids, matrix } = report.overlap;
  const cell = Math.max(8, ...matrix.flat().map((n) => String(n).length + 1));
  const labels = ids.map((id, i) => `[${i + 1}] ${id}`);
  const labelWidth = Math.max(0, ...labels.map((l) => l.length));
  lines.push(`${''.padEnd(labelWidth)}${ids.map((_, j) => `[${j + 1}]`.padStart(cell)).join('')}`);
  labels.forEach((label, i) => lines.push(`${label.padEnd(labelWidth)}${matrix[i]!.map((n) => String(n).padStart(cell)).join('')}`));
  return `${lines.join('\n')}\n`;
}
