// `microflows validate [paths...]`: checks flow files, templates and segment files, each path taken for what it holds
// (not for whether it is the configured directory), and reports every problem with file:line.
import fs from 'node:fs';
import path from 'node:path';
import { isMap, parseDocument } from 'yaml';
import { readConfig, type Config } from '../core/config';
import { formatProblem, type FileProblem } from '../core/errors';
import { SEND_POLICY_FILE } from '../core/send-policy';
import { checkSendPolicyFile, sendPolicyPath } from './policy-file';
import { loadFlowPaths } from './project-files';
import { checkSegments, segmentIdsIn, type CheckedSegments } from './segment-files';
import { checkTemplates } from './template-files';
import { checkBrandFile, missingBrandMessage } from './brand-file';

export const VALIDATE_ARGS = '[paths...]';
export const VALIDATE_USAGE = `usage: microflows validate [paths...]

Checks flow files, templates and segment files and reports every problem as
  file:line:col (path): error: what to fix
Without paths: the flows, templates and segments directories (MICROFLOWS_FLOWS_DIR, MICROFLOWS_TEMPLATES_DIR,
MICROFLOWS_SEGMENTS_DIR). A path is a file or a directory, taken for what it holds wherever it is: .mjml files are
templates; a YAML file with top-level rules: or when: is a segment, one with trigger: or steps: a flow; a YAML file
that says neither is a segment inside a directory named segments (or MICROFLOWS_SEGMENTS_DIR), else a flow.
A file named policy.yaml is the send policy (frequency caps, quiet hours), never a flow.
Flows are checked against the templates of MICROFLOWS_TEMPLATES_DIR and the segments of MICROFLOWS_SEGMENTS_DIR.
Marketing templates must show the postal address of the brand file (MICROFLOWS_BRAND_FILE, default brand.yaml),
the unsubscribe link and the preference link (the footer partial has all three).
Exit code: 0 when nothing has an error (warnings are printed), 1 otherwise.`;

const YAML_FILE = /\.ya?ml$/i;
const FLOW_KEYS = ['trigger', 'steps', 'version', 'priority', 'entry', 'exit'];
const SEGMENT_KEYS = ['rules', 'when'];

/** Paths inside the working directory print relative, so `file:line` is clickable and short. */
export function displayPath(file: string): string {
  if (!path.isAbsolute(file)) return file;
  const relative = path.relative(process.cwd(), file);
  return relative && !relative.startsWith('..') ? relative : file;
}

export function printProblems(problems: FileProblem[], print: (line: string) => void): void {
  for (const problem of problems) print(formatProblem({ ...problem, file: displayPath(problem.file) }));
}

const countOf = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? '' : 's'}`;

/** A YAML file's kind by its top-level keys, then by where it sits; a file that cannot be read as YAML counts as a flow. */
export function yamlFileKind(file: string, segmentsDir: string): 'flow' | 'segment' {
  let keys: string[] = [];
  try {
    const document = parseDocument(fs.readFileSync(file, 'utf8'));
    if (isMap(document.contents)) keys = document.contents.items.map((item) => String((item.key as { value?: unknown } | null)?.value ?? item.key));
  } catch {
    // unreadable: the flow checker reports it with its line
  }
  if (keys.some((k) => FLOW_KEYS.includes(k))) return 'flow';
  if (keys.some((k) => SEGMENT_KEYS.includes(k))) return 'segment';
  const dir = path.dirname(path.resolve(file));
  return dir === path.resolve(segmentsDir) || path.basename(dir) === 'segments' ? 'segment' : 'flow';
}

function holdsTemplates(dir: string): boolean {
  return fs.readdirSync(dir).some((f) => f.endsWith('.mjml'));
}

interface Targets {
  flows: string[];
  templates: string[];
  /** A segments directory, and the files of it to report (null: all of it). */
  segments: Array<{ dir: string; only: Set<string> | null }>;
  /** Send policy files (policy.yaml). */
  policies: string[];
}

const isPolicyFile = (file: string): boolean => path.basename(file) === SEND_POLICY_FILE;

/** Sorts the paths given into flow, template and segment targets by what each holds. */
export function validationTargets(paths: string[], config: Pick<Config, 'segmentsDir'>): Targets {
  const targets: Targets = { flows: [], templates: [], segments: [], policies: [] };
  const segmentFiles = new Map<string, Set<string>>();
  const addSegmentFile = (file: string) => {
    const dir = path.dirname(path.resolve(file));
    segmentFiles.set(dir, (segmentFiles.get(dir) ?? new Set()).add(path.resolve(file)));
  };
  for (const p of paths) {
    const stat = fs.statSync(p, { throwIfNoEntry: false });
    if (!stat) {
      targets.flows.push(p); // reported as "no such file or directory"
    } else if (stat.isFile()) {
      if (p.endsWith('.mjml')) targets.templates.push(p);
      else if (isPolicyFile(p)) targets.policies.push(p);
      else if (YAML_FILE.test(p) && yamlFileKind(p, config.segmentsDir) === 'segment') addSegmentFile(p);
      else targets.flows.push(p);
    } else if (holdsTemplates(p)) {
      targets.templates.push(p);
    } else if (path.resolve(p) === path.resolve(config.segmentsDir)) {
      targets.segments.push({ dir: p, only: null });
    } else {
      const yamlFiles = fs
        .readdirSync(p, { withFileTypes: true })
        .filter((e) => e.isFile() && YAML_FILE.test(e.name))
        .map((e) => path.join(p, e.name));
      // The policy beside the flows is checked as what it is; the flow loader skips it in a directory.
      targets.policies.push(...yamlFiles.filter(isPolicyFile));
      const files = yamlFiles.filter((f) => !isPolicyFile(f));
      const segments = files.filter((f) => yamlFileKind(f, config.segmentsDir) === 'segment');
      if (files.length > 0 && segments.length === files.length) targets.segments.push({ dir: p, only: null });
      else if (segments.length === 0) targets.flows.push(p); // flows, or an empty directory (warned about as such)
      else {
        targets.flows.push(...files.filter((f) => !segments.includes(f)));
        segments.forEach(addSegmentFile);
      }
    }
  }
  for (const [dir, only] of segmentFiles) targets.segments.push({ dir, only });
  return targets;
}

/** Checks a segments directory (so in_segment resolves among its files), keeping what concerns `only`. */
function checkSegmentTarget(target: Targets['segments'][number]): CheckedSegments {
  const checked = checkSegments(target.dir);
  const only = target.only;
  if (!only) return checked;
  return { segments: checked.segments.filter((s) => only.has(path.resolve(s.file))), problems: checked.problems.filter((p) => only.has(path.resolve(p.file))) };
}

export async function runValidate(args: string[]): Promise<number> {
  const config = readConfig(process.env, process.cwd());
  const targets: Targets =
    args.length > 0
      ? validationTargets(args, config)
      : {
          flows: [config.flowsDir],
          templates: [config.templatesDir],
          segments: fs.existsSync(config.segmentsDir) ? [{ dir: config.segmentsDir, only: null }] : [],
          policies: fs.existsSync(sendPolicyPath(config.flowsDir)) ? [sendPolicyPath(config.flowsDir)] : [],
        };
  const { flows, problems } = targets.flows.length > 0 ? loadFlowPaths(targets.flows, config.templatesDir, segmentIdsIn(config.segmentsDir)) : { flows: [], problems: [] };
  // Marketing templates are checked against the brand's postal address; the brand file is checked when they are.
  const brandFile = targets.templates.length > 0 ? checkBrandFile(config.brandFile) : { brand: null, problems: [] };
  const templates = targets.templates.map((target) => checkTemplates(target, brandFile.brand));
  const marketing = templates.flatMap((t) => t.templates).filter((t) => t.header.category === 'marketing').map((t) => t.name);
  const brandProblems: FileProblem[] =
    brandFile.problems.length > 0 || brandFile.brand || marketing.length === 0 ? brandFile.problems : [{ file: config.brandFile, severity: 'error', message: missingBrandMessage(config.brandFile, marketing) }];
  const segments = targets.segments.map(checkSegmentTarget);
  const policies = [...new Set(targets.policies)].map((file) => checkSendPolicyFile(file));
  const allProblems = [...problems, ...brandProblems, ...templates.flatMap((t) => t.problems), ...segments.flatMap((s) => s.problems), ...policies.flatMap((p) => p.problems)];
  printProblems(allProblems, (line) => console.log(line));
  // What each template reads, so a reviewer sees which profile, event and catalog fields an email depends on.
  for (const template of templates.flatMap((t) => t.templates)) {
    console.log(`${displayPath(template.file)} reads: ${template.fieldsRead.map((f) => f.path).join(', ') || 'no fields'}`);
  }
  const errors = allProblems.filter((p) => p.severity === 'error');
  if (errors.length > 0) {
    const files = new Set(errors.map((p) => p.file)).size;
    console.log(`${countOf(errors.length, 'error')} in ${countOf(files, 'file')}`);
    return 1;
  }
  const templateCount = templates.reduce((n, t) => n + t.templates.length, 0);
  const checked = [
    targets.flows.length > 0 ? countOf(flows.length, 'flow') : null,
    targets.templates.length > 0 ? countOf(templateCount, 'template') : null,
    segments.length > 0 ? countOf(segments.reduce((n, s) => n + s.segments.length, 0), 'segment') : null,
    policies.length > 0 ? 'the send policy' : null,
  ].filter((part) => part !== null);
  console.log(`ok: ${checked.length > 1 ? `${checked.slice(0, -1).join(', ')} and ${checked[checked.length - 1]}` : checked[0]} valid`);
  return 0;
}
