// Reads the send policy (flows/policy.yaml) from disk for start, validate and check: a missing file is the default
// policy (no caps, no quiet hours), a bad one is refused with file:line like a bad flow.
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { InvalidFileError, type FileProblem } from '../core/errors';
import { DEFAULT_SEND_POLICY, parseSendPolicy, SEND_POLICY_FILE, type SendPolicy } from '../core/send-policy';
import type { TemplateCategory } from '../core/suppression';

export interface CheckedSendPolicy {
  /** The policy read, DEFAULT_SEND_POLICY when there is no file, null when the file has errors. */
  policy: SendPolicy | null;
  /** Whether the file exists (a default policy from a missing file is not worth reporting as checked). */
  found: boolean;
  problems: FileProblem[];
}

export function sendPolicyPath(flowsDir: string): string {
  return path.join(flowsDir, SEND_POLICY_FILE);
}

/** Reads and validates a policy file; `displayFile` is the name problems carry (default: the path). */
export function checkSendPolicyFile(file: string, displayFile: string = file): CheckedSendPolicy {
  let source: string;
  try {
    source = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { policy: DEFAULT_SEND_POLICY, found: false, problems: [] };
    return { policy: null, found: true, problems: [{ file: displayFile, severity: 'error', message: `cannot read the send policy: ${(err as Error).message}` }] };
  }
  const { policy, problems } = parseSendPolicy(source, displayFile);
  return { policy, found: true, problems };
}

/** The policy of a flows directory for the runtime; throws InvalidFileError when the file has errors. */
export function loadSendPolicy(flowsDir: string): SendPolicy {
  const { policy, problems } = checkSendPolicyFile(sendPolicyPath(flowsDir));
  if (!policy) throw new InvalidFileError(problems);
  return policy;
}

const TEMPLATE_HEADER = /^---\r?\n([\s\S]*?)\r?\n---\r?\n/;

/**
 * The category each template's header declares (marketing when it says none, as the template compiler reads it),
 * from the header alone so `check` stays fast; a template it cannot read counts as marketing, which caps count, and
 * `validate` reports what is wrong with it.
 */
export function templateCategoryReader(templatesDir: string): (template: string) => TemplateCategory {
  const cache = new Map<string, TemplateCategory>();
  return (template) => {
    const known = cache.get(template);
    if (known) return known;
    let category: TemplateCategory = 'marketing';
    try {
      const header = TEMPLATE_HEADER.exec(fs.readFileSync(path.join(templatesDir, `${template}.mjml`), 'utf8'));
      const parsed = header ? (YAML.parse(header[1] ?? '') as { category?: unknown } | null) : null;
      if (parsed?.category === 'transactional') category = 'transactional';
    } catch {
      // missing or unreadable: marketing, as above
    }
    cache.set(template, category);
    return category;
  };
}
