// Reads flow files from disk and compiles them, collecting every problem across files (the I/O side of the compiler).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { FileProblem } from '../core/errors';
import { checkFlow } from '../core/flow-compiler';
import type { FlowDefinition } from '../core/flow-types';
import { SEND_POLICY_FILE } from '../core/send-policy';

const FLOW_FILE = /\.ya?ml$/i;

/** Whether a file in the flows directory is a flow: YAML, and not the send policy that sits beside the flows. */
export function isFlowFileName(name: string): boolean {
  return FLOW_FILE.test(name) && name !== SEND_POLICY_FILE;
}

export interface LoadedFlows {
  flows: FlowDefinition[];
  problems: FileProblem[];
}

/** `templates/<name>.mjml` must exist for `send: { template: <name> }`. */
export function templateChecker(templatesDir: string): (name: string) => boolean {
  return (name) => fs.existsSync(path.join(templatesDir, `${name}.mjml`));
}

/** Every `*.yaml` / `*.yml` directly in `flowsDir`, sorted by name, compiled. */
export function loadFlowFiles(flowsDir: string, templatesDir: string, segmentIds?: ReadonlySet<string>): LoadedFlows {
  return loadFlowPaths([flowsDir], templatesDir, segmentIds);
}

/** Problems in the given files and directories (a directory means its flow files); empty when all are valid. */
export function validatePaths(paths: string[], templatesDir: string, segmentIds?: ReadonlySet<string>): FileProblem[] {
  return loadFlowPaths(paths, templatesDir, segmentIds).problems;
}

/** Compiles the flow files named by `paths` (files, or directories of flow files), checking them against each other. */
export function loadFlowPaths(paths: string[], templatesDir: string, segmentIds?: ReadonlySet<string>): LoadedFlows {
  const problems: FileProblem[] = [];
  const files: string[] = [];
  for (const p of paths) {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(p);
    } catch {
      problems.push({ file: p, severity: 'error', message: 'no such file or directory' });
      continue;
    }
    if (stat.isDirectory()) {
      const inDir = fs
        .readdirSync(p, { withFileTypes: true })
        .filter((e) => e.isFile() && isFlowFileName(e.name))
        .map((e) => path.join(p, e.name))
        .sort();
      if (inDir.length === 0) problems.push({ file: p, severity: 'warning', message: 'no flow files (*.yaml, *.yml) in this directory' });
      files.push(...inDir);
    } else {
      files.push(p);
    }
  }

  const templateExists = templateChecker(templatesDir);
  const flows: FlowDefinition[] = [];
  // id@version -> the file that defined it first, to catch two files claiming the same version.
  const seen = new Map<string, string>();
  for (const file of [...new Set(files)]) {
    const source = fs.readFileSync(file, 'utf8');
    const sha256 = createHash('sha256').update(source, 'utf8').digest('hex');
    const result = checkFlow(source, file, { templateExists, sha256, ...(segmentIds ? { segmentIds } : {}) });
    problems.push(...result.problems);
    if (!result.flow) continue;
    const key = `${result.flow.id}@${result.flow.version}`;
    const first = seen.get(key);
    if (first) {
      const at = result.positions.version ?? result.positions.id;
      problems.push({
        file,
        ...(at ? { line: at.line, column: at.column } : {}),
        path: 'version',
        severity: 'error',
        message: `flow "${result.flow.id}" version ${result.flow.version} is also defined in ${first}; give one of them another id or a new version`,
      });
      continue;
    }
    seen.set(key, file);
    flows.push(result.flow);
  }
  return { flows, problems };
}
