// `microflows check`: the static flow checker for CI. Reads flow and segment files only (no store, no server), prints
// every finding with file:line and a flow × flow matrix of who wins when two flows want one customer at once.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { readConfig } from '../core/config';
import type { FileProblem } from '../core/errors';
import { checkFlow } from '../core/flow-compiler';
import { checkProject, type CheckedFlow, type CheckReport, type PairOutcome } from '../core/flow-check';
import { checkSendPolicyFile, sendPolicyPath, templateCategoryReader } from './policy-file';
import { isFlowFileName, templateChecker } from './project-files';
import { checkSegments, segmentIdsIn } from './segment-files';
import { displayPath, printProblems } from './validate';

export const CHECK_ARGS = '[--json] [--flows dir] [--segments dir] [--events file]';
export const CHECK_USAGE = `usage: microflows check ${CHECK_ARGS}

Checks the flows statically, for CI: no store and no server are needed. Reports, each with file:line:
  - every problem \`validate\` finds in the flow and segment files (unreachable steps, sends after an exit,
    goto loops without a wait, ...);
  - pairs of flows that can start for the same customer at the same moment (same event with filters that can
    both match, segments whose rules can hold together, inactivity), and how arbitration settles them; two such
    flows in one group with the same priority are a tie: an error;
  - wait_for steps on an event that no flow trigger, segment rule, microflows system event or declared source
    sends (a warning); declare the events your sources send under events: in policy.yaml, or with --events;
  - with a send policy (policy.yaml in the flows directory, checked too): sends that the flow's own earlier sends
    always push into a frequency cap, so they are always skipped (an error), and sends that can be deferred past
    defer.max or longer than the wait after them (warnings).
Then prints a flow × flow matrix: the flow that wins each pair, "both" for flows of different groups (they run side
by side), "tie!" for a tie, "-" when the two cannot start at the same moment.
  --json             print { findings, flows, matrix } as JSON instead
  --flows dir        the flow files (default MICROFLOWS_FLOWS_DIR); policy.yaml in it is the send policy
  --segments dir     the segment files (default MICROFLOWS_SEGMENTS_DIR)
  --events file      event names your sources send, one a line (# comments), for wait_for
Templates are looked up in MICROFLOWS_TEMPLATES_DIR. Exit code: 1 when there is an error, else 0.`;

interface CheckArgs {
  json: boolean;
  flowsDir?: string;
  segmentsDir?: string;
  eventsFile?: string;
}

function parseArgs(args: string[]): CheckArgs | string {
  const parsed: CheckArgs = { json: false };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--json') {
      parsed.json = true;
      continue;
    }
    const key = ({ '--flows': 'flowsDir', '--segments': 'segmentsDir', '--events': 'eventsFile' } as const)[arg as '--flows'];
    const value = args[i + 1];
    if (!key) return `unknown argument "${arg}"`;
    if (value === undefined || value.startsWith('--')) return `${arg} needs a value`;
    parsed[key] = value;
    i++;
  }
  return parsed;
}

/** One event name a line; blank lines and # comments are skipped. */
export function readEventsFile(source: string): string[] {
  return source
    .split('\n')
    .map((line) => line.replace(/#.*$/, '').trim())
    .filter((line) => line !== '');
}

function loadFlows(flowsDir: string, templatesDir: string, segmentIds: ReadonlySet<string>): { flows: CheckedFlow[]; problems: FileProblem[] } {
  if (!fs.existsSync(flowsDir) || !fs.statSync(flowsDir).isDirectory()) return { flows: [], problems: [{ file: flowsDir, severity: 'error', message: 'no such directory: pass --flows <dir> or set MICROFLOWS_FLOWS_DIR' }] };
  const files = fs
    .readdirSync(flowsDir)
    .filter(isFlowFileName)
    .sort()
    .map((name) => path.join(flowsDir, name));
  const templateExists = templateChecker(templatesDir);
  const problems: FileProblem[] = [];
  const newest = new Map<string, CheckedFlow>();
  for (const file of files) {
    const source = fs.readFileSync(file, 'utf8');
    const sha256 = createHash('sha256').update(source, 'utf8').digest('hex');
    const result = checkFlow(source, displayPath(file), { templateExists, sha256, segmentIds });
    problems.push(...result.problems);
    if (!result.flow) continue;
    // Several versions of one flow: new customers enter the newest, so that is the one that competes.
    const seen = newest.get(result.flow.id);
    if (!seen || seen.flow.version < result.flow.version) newest.set(result.flow.id, { flow: result.flow, positions: result.positions });
  }
  return { flows: [...newest.values()], problems };
}

function cell(outcome: PairOutcome | undefined): string {
  if (!outcome) return '·';
  switch (outcome.kind) {
    case 'disjoint':
      return '-';
    case 'both':
      return 'both';
    case 'tie':
      return 'tie!';
    case 'wins':
      return outcome.winner;
  }
}

export function formatMatrix(report: Pick<CheckReport, 'flowIds' | 'matrix'>): string[] {
  const ids = report.flowIds;
  if (ids.length === 0) return [];
  const rows = ids.map((a) => [a, ...ids.map((b) => (a === b ? '·' : cell(report.matrix[a]?.[b])))]);
  const header = ['', ...ids];
  const widths = header.map((_, col) => Math.max(header[col]!.length, ...rows.map((row) => row[col]!.length)));
  const line = (row: string[]) => row.map((text, col) => text.padEnd(widths[col]!)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)];
}

export async function runCheck(args: string[]): Promise<number> {
  const parsed = parseArgs(args);
  if (typeof parsed === 'string') {
    console.error(`${parsed}\nusage: microflows check ${CHECK_ARGS}`);
    return 1;
  }
  const config = readConfig(process.env, process.cwd());
  const segmentsDir = parsed.segmentsDir ?? config.segmentsDir;
  const segments = checkSegments(segmentsDir);
  for (const problem of segments.problems) problem.file = displayPath(problem.file);
  const flowsDir = parsed.flowsDir ?? config.flowsDir;
  const { flows, problems } = loadFlows(flowsDir, config.templatesDir, segmentIdsIn(segmentsDir));
  const policyFile = sendPolicyPath(flowsDir);
  const policy = checkSendPolicyFile(policyFile, displayPath(policyFile));
  let declaredEvents: string[] = [];
  const eventProblems: FileProblem[] = [];
  if (parsed.eventsFile !== undefined) {
    try {
      declaredEvents = readEventsFile(fs.readFileSync(parsed.eventsFile, 'utf8'));
    } catch (err) {
      eventProblems.push({ file: parsed.eventsFile, severity: 'error', message: `cannot read the events file: ${(err as Error).message}` });
    }
  }
  const report = checkProject({
    flows,
    segments: segments.segments,
    declaredEvents,
    ...(policy.policy ? { policy: policy.policy } : {}),
    templateCategory: templateCategoryReader(config.templatesDir),
  });
  const findings: FileProblem[] = [...eventProblems, ...segments.problems, ...policy.problems, ...problems, ...report.findings];
  const errors = findings.filter((f) => f.severity === 'error').length;
  if (parsed.json) {
    console.log(JSON.stringify({ findings, flows: report.flowIds, matrix: report.matrix }, null, 2));
  } else {
    printProblems(findings, (line) => console.log(line));
    if (findings.length > 0) console.log('');
    for (const line of formatMatrix(report)) console.log(line);
    const warnings = findings.length - errors;
    console.log(`${flows.length} valid flow${flows.length === 1 ? '' : 's'} checked: ${errors} error${errors === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'}`);
  }
  return errors > 0 ? 1 : 0;
}
