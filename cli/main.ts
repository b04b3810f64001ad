// The `microflows` command line: a table of named commands, each an async handler that returns its exit code.
import fs from 'node:fs';
import path from 'node:path';
import { readConfig } from '../core/config';
import { formatProblem } from '../core/errors';
import type { FileProblem } from '../core/errors';
import type { FlowDefinition } from '../core/flow-types';
import { flowToMermaid } from '../core/mermaid';
import { IMPORT_ARGS, runImport } from './import';
import { loadFlowFiles, loadFlowPaths } from './project-files';
import { PREVIEW_ARGS, runPreview } from './preview';
import { serve } from './serve';
import { checkSegments, segmentIdsIn } from './segment-files';
import { SEGMENTS_ARGS, runSegments } from './segments';
import { checkTemplates } from './template-files';

export interface Command {
  /** Arguments as shown in the usage text, e.g. `[paths...]`. */
  args: string;
  summary: string;
  /** Resolves to the process exit code; long-running commands resolve when they have shut down. */
  run: (args: string[]) => Promise<number>;
}

/** Paths inside the working directory print relative, so `file:line` is clickable and short. */
function displayPath(file: string): string {
  if (!path.isAbsolute(file)) return file;
  const relative = path.relative(process.cwd(), file);
  return relative && !relative.startsWith('..') ? relative : file;
}

function printProblems(problems: FileProblem[], print: (line: string) => void): void {
  for (const problem of problems) print(formatProblem({ ...problem, file: displayPath(problem.file) }));
}

const countOf = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? '' : 's'}`;

export const commands: Record<string, Command> = {
  validate: {
    args: '[paths...]',
    summary: 'check flow files, templates and segments (default: their directories), reporting every problem with file:line',
    async run(args) {
      const config = readConfig(process.env, process.cwd());
      const isTemplatePath = (p: string) => p.endsWith('.mjml') || (fs.existsSync(p) && fs.statSync(p).isDirectory() && fs.readdirSync(p).some((f) => f.endsWith('.mjml')));
      const isSegmentsDir = (p: string) => path.resolve(p) === path.resolve(config.segmentsDir);
      const flowPaths = args.length > 0 ? args.filter((p) => !isTemplatePath(p) && !isSegmentsDir(p)) : [config.flowsDir];
      const templatePaths = args.length > 0 ? args.filter(isTemplatePath) : [config.templatesDir];
      const { flows, problems } = flowPaths.length > 0 ? loadFlowPaths(flowPaths, config.templatesDir, segmentIdsIn(config.segmentsDir)) : { flows: [], problems: [] };
      const templates = templatePaths.map(checkTemplates);
      // Segments: the segments folder, when no paths are given or when it is one of them.
      const segmentsDir = path.resolve(config.segmentsDir);
      const segmentChecks = (args.length === 0 && fs.existsSync(segmentsDir)) || args.some((p) => path.resolve(p) === segmentsDir) ? [checkSegments(config.segmentsDir)] : [];
      const allProblems = [...problems, ...templates.flatMap((t) => t.problems), ...segmentChecks.flatMap((s) => s.problems)];
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
        flowPaths.length > 0 ? countOf(flows.length, 'flow') : null,
        templatePaths.length > 0 ? countOf(templateCount, 'template') : null,
        segmentChecks.length > 0 ? countOf(segmentChecks[0]!.segments.length, 'segment') : null,
      ].filter((part) => part !== null);
      console.log(`ok: ${checked.length > 1 ? `${checked.slice(0, -1).join(', ')} and ${checked[checked.length - 1]}` : checked[0]} valid`);
      return 0;
    },
  },

  diagram: {
    args: '<flow-id[@version] | file>',
    summary: 'print a flow as a Mermaid flowchart',
    async run(args) {
      const [wanted] = args;
      if (!wanted || args.length > 1) {
        console.error(`usage: microflows diagram ${commands.diagram!.args}`);
        return 1;
      }
      const config = readConfig(process.env, process.cwd());
      const isFile = fs.existsSync(wanted) && fs.statSync(wanted).isFile();
      const { flows, problems } = isFile ? loadFlowPaths([wanted], config.templatesDir) : loadFlowFiles(config.flowsDir, config.templatesDir);
      let flow: FlowDefinition | undefined;
      if (isFile) {
        flow = flows[0];
      } else {
        const [id, version] = wanted.split('@');
        // Without a version, the newest one: that is the version new customers enter.
        flow = flows
          .filter((f) => f.id === id && (version === undefined || String(f.version) === version))
          .sort((a, b) => b.version - a.version)[0];
      }
      if (!flow) {
        printProblems(
          problems.filter((p) => p.severity === 'error'),
          (line) => console.error(line),
        );
        if (!isFile) {
          const known = [...new Set(flows.map((f) => `${f.id}@${f.version}`))].join(', ') || 'none';
          console.error(`no valid flow "${wanted}" in ${displayPath(config.flowsDir)} (valid flows: ${known}); pass a file path or a flow id`);
        }
        return 1;
      }
      process.stdout.write(flowToMermaid(flow));
      return 0;
    },
  },

  import: {
    args: IMPORT_ARGS,
    summary: 'load customers or event history from CSV or JSONL; never triggers flows (import --help)',
    run: runImport,
  },

  preview: {
    args: PREVIEW_ARGS,
    summary: 'render a template for a customer or a typical member of a segment: subject, fallbacks, fields, text (preview --help)',
    run: runPreview,
  },

  segments: {
    args: SEGMENTS_ARGS,
    summary: 'segment sizes, overlap, too-small and unused segments, last sweep (report), or a page of members',
    run: runSegments,
  },

  start: {
    args: '',
    summary: 'run the embedded stack: Temporal dev server (+ Web UI), worker and HTTP server; Ctrl-C stops it',
    run: () => serve('all'),
  },

  worker: {
    args: '',
    summary: 'run a worker only, against TEMPORAL_ADDRESS (scale out by running more)',
    run: () => serve('worker'),
  },

  server: {
    args: '',
    summary: 'run the HTTP server only (ingest and API), against TEMPORAL_ADDRESS',
    run: () => serve('server'),
  },
};

export function usage(): string {
  const width = Math.max(...Object.entries(commands).map(([name, c]) => name.length + c.args.length + 1));
  const rows = Object.entries(commands).map(([name, c]) => `  ${`${name} ${c.args}`.padEnd(width)}  ${c.summary}`);
  return ['usage: microflows <command> [args]', '', 'commands:', ...rows].join('\n');
}

async function run(argv: string[] = process.argv.slice(2)): Promise<void> {
  const [name, ...args] = argv;
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    console.log(usage());
    return;
  }
  const command = commands[name];
  if (!command) {
    console.error(`unknown command "${name}"\n\n${usage()}`);
    process.exitCode = 1;
    return;
  }
  // exitCode rather than exit(): lets stdout drain when it is a pipe.
  process.exitCode = await command.run(args);
}

run().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
