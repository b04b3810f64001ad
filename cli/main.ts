// The `microflows` command line: a table of named commands, each an async handler that returns its exit code.
import fs from 'node:fs';
import { readConfig } from '../core/config';
import type { FlowDefinition } from '../core/flow-types';
import { flowToMermaid } from '../core/mermaid';
import { IMPORT_ARGS, IMPORT_USAGE, runImport } from './import';
import { KEYS_ARGS, KEYS_USAGE, runKeys } from './keys';
import { AUDIT_ARGS, AUDIT_USAGE, runAudit } from './audit';
import { REPORT_ARGS, REPORT_USAGE, runReport } from './report';
import { CODES_ARGS, CODES_USAGE, runCodes } from './codes';
import { DATA_KEYS_ARGS, DATA_KEYS_USAGE, runDataKeys } from './data-keys';
import { SUPPRESSIONS_ARGS, SUPPRESSIONS_USAGE, runSuppressions } from './suppressions';
import { CUSTOMERS_ARGS, CUSTOMERS_USAGE, runCustomers } from './customers';
import { loadFlowFiles, loadFlowPaths } from './project-files';
import { PREVIEW_ARGS, PREVIEW_USAGE, runPreview } from './preview';
import { serve } from './serve';
import { SEGMENTS_ARGS, runSegments } from './segments';
import { displayPath, printProblems, runValidate, VALIDATE_ARGS, VALIDATE_USAGE } from './validate';
import { CHECK_ARGS, CHECK_USAGE, runCheck } from './check';

export interface Command {
  /** Arguments as shown in the usage text, e.g. `[paths...]`. */
  args: string;
  summary: string;
  /** What `microflows <command> --help` prints: the full usage, options, and what the command reads. */
  usage: string;
  /** Resolves to the process exit code; long-running commands resolve when they have shut down. */
  run: (args: string[]) => Promise<number>;
}

export const commands: Record<string, Command> = {
  validate: {
    args: VALIDATE_ARGS,
    summary: 'check flow files, templates and segments (default: their directories), reporting every problem with file:line',
    usage: VALIDATE_USAGE,
    run: runValidate,
  },

  check: {
    args: CHECK_ARGS,
    summary: 'static flow check for CI: flows that can collide and who wins (flow × flow matrix), ties, unreachable steps, waits on unknown events',
    usage: CHECK_USAGE,
    run: runCheck,
  },

  diagram: {
    args: '<flow-id[@version] | file>',
    summary: 'print a flow as a Mermaid flowchart',
    usage: `usage: microflows diagram <flow-id[@version] | file>

Prints a flow as a Mermaid flowchart (paste it into any Mermaid viewer, or a Markdown file on GitHub).
A flow id is looked up in MICROFLOWS_FLOWS_DIR, newest version first unless @version is given; a path names a flow
file anywhere. Exit code 1 when the flow is unknown or invalid, with its problems.`,
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
    usage: IMPORT_USAGE,
    run: runImport,
  },

  preview: {
    args: PREVIEW_ARGS,
    summary: 'render a template for a customer or a typical member of a segment: subject, fallbacks, fields, text (preview --help)',
    usage: PREVIEW_USAGE,
    run: runPreview,
  },

  segments: {
    args: SEGMENTS_ARGS,
    summary: 'segment sizes, overlap, too-small and unused segments, last sweep (report), or a page of members',
    usage: `usage: microflows segments report [--json]
       microflows segments members <segment> [--after <customer id>] [--limit <n>]

  report    each segment's size, the overlap between segments, segments too small to matter
            (MICROFLOWS_SEGMENT_MIN_SIZE), segments no flow uses, and when each was last swept; --json prints JSON
  members   one page of a segment's members with the time each entered (--limit, default 100); --after <customer id>
            gives the page after that member
Reads the segments of MICROFLOWS_SEGMENTS_DIR and the store (DATABASE_URL, or the SQLite file).`,
    run: runSegments,
  },

  keys: {
    args: KEYS_ARGS,
    summary: 'create, list and revoke admin API keys and source (write) keys',
    usage: KEYS_USAGE,
    run: runKeys,
  },

  audit: {
    args: AUDIT_ARGS,
    summary: 'what happened: flows that collided for the same customers and how, emails per customer per week, unsubscribe and complaint rates by volume',
    usage: AUDIT_USAGE,
    run: runAudit,
  },

  report: {
    args: REPORT_ARGS,
    summary: 'flow numbers: the funnel per step and variant with rates and intervals, lift against the holdout, experiment states',
    usage: REPORT_USAGE,
    run: runReport,
  },

  codes: {
    args: CODES_ARGS,
    summary: 'import unique offer codes into a pool ({{offer_code pool="…"}} gives each send one), or list the pools',
    usage: CODES_USAGE,
    run: runCodes,
  },

  'data-keys': {
    args: DATA_KEYS_ARGS,
    summary: 'rewrap the Temporal payload data keys with the current master key (after a rotation), or count them',
    usage: DATA_KEYS_USAGE,
    run: runDataKeys,
  },

  suppressions: {
    args: SUPPRESSIONS_ARGS,
    summary: 'list, add, remove, import and export the suppression list (bounces, complaints, unsubscribes)',
    usage: SUPPRESSIONS_USAGE,
    run: runSuppressions,
  },

  customers: {
    args: CUSTOMERS_ARGS,
    summary: 'erase a customer (store and running flows) or export everything held about them as JSON',
    usage: CUSTOMERS_USAGE,
    run: runCustomers,
  },

  start: {
    args: '',
    summary: 'run the embedded stack: Temporal dev server (+ Web UI), worker and HTTP server; Ctrl-C stops it',
    usage: `usage: microflows start

Runs the embedded stack: the Temporal dev server (gRPC on TEMPORAL_PORT, Web UI on TEMPORAL_UI_PORT, its SQLite file
in MICROFLOWS_DATA_DIR), a worker and the HTTP server on PORT. Flows, templates and segments are validated: an
invalid file stops it, naming file and line. Flow and segment files are read at start: a new version needs a restart.
The dev server is recorded in MICROFLOWS_DATA_DIR/temporal-dev-server.json and stops when this process ends, even
when it is killed; a start finding one that an earlier start left running stops it first, and refuses a port held
by a server it did not start. Ctrl-C (or SIGTERM) stops everything it started; a second Ctrl-C stops at once.
With TEMPORAL_ADDRESS set it uses that server and starts none. Every setting: README, "Configuration".`,
    run: () => serve('all'),
  },

  worker: {
    args: '',
    summary: 'run a worker only, against TEMPORAL_ADDRESS (scale out by running more)',
    usage: `usage: microflows worker

Runs a worker only (workflows, activities, the sweep Schedules) against TEMPORAL_ADDRESS on TEMPORAL_TASK_QUEUE, with
the store of DATABASE_URL; run more of them to scale out. Flow and segment files are read at start: a new version
needs a restart of every process. Ctrl-C (or SIGTERM) stops it after the tasks in hand. Every setting: README,
"Configuration" and "Scaling out".`,
    run: () => serve('worker'),
  },

  server: {
    args: '',
    summary: 'run the HTTP server only (ingest and API), against TEMPORAL_ADDRESS',
    usage: `usage: microflows server

Runs the HTTP server only (the Segment ingest API at /v1/*, tracking, unsubscribe and the admin API at /api/*) on
HOST:PORT, against TEMPORAL_ADDRESS and the store of DATABASE_URL; put several behind a load balancer. Flow and
segment files are read at start: a new version needs a restart of every process. Ctrl-C (or SIGTERM) stops it.
Every setting: README, "Configuration" and "Scaling out".`,
    run: () => serve('server'),
  },
};

export function usage(): string {
  const width = Math.max(...Object.entries(commands).map(([name, c]) => name.length + c.args.length + 1));
  const rows = Object.entries(commands).map(([name, c]) => `  ${`${name} ${c.args}`.padEnd(width)}  ${c.summary}`);
  return ['usage: microflows <command> [args]', '', 'commands:', ...rows, '', 'microflows <command> --help (or -h) prints the usage of one command.'].join('\n');
}

/** `--help` or `-h` anywhere among a command's arguments asks for its usage, as `microflows help <command>` does. */
const HELP_FLAGS = ['--help', '-h'];

async function run(argv: string[] = process.argv.slice(2)): Promise<void> {
  const [name, ...args] = argv;
  if (name === undefined || HELP_FLAGS.includes(name) || (name === 'help' && args.length === 0)) {
    console.log(usage());
    return;
  }
  const asked = name === 'help' ? args[0]! : name;
  const command = commands[asked];
  if (!command) {
    console.error(`unknown command "${asked}"\n\n${usage()}`);
    process.exitCode = 1;
    return;
  }
  if (name === 'help' || args.some((arg) => HELP_FLAGS.includes(arg))) {
    console.log(command.usage);
    return;
  }
  // exitCode rather than exit(): lets stdout drain when it is a pipe.
  process.exitCode = await command.run(args);
}

run().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
