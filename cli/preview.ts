// `microflows preview <template> --profile <id>`: what that customer would get, rendered exactly as a send renders
// it (same data, catalog, fallbacks), without tracking tokens. Prints the subject, preheader, the fallbacks used,
// the fields read and the text part; --format html|json prints that instead, --out writes the HTML to a file.
import fs from 'node:fs';
import { catalogReader } from '../activities/catalog';
import { previewTemplate, type TemplatePreview } from '../activities/preview';
import { TemplateLibrary } from '../activities/templates';
import { readConfig } from '../core/config';
import { openStore } from '../store/open-store';
import { typicalMemberProfile } from './typical-member';

export const PREVIEW_ARGS = '<template> --profile <id> | --as <segment>';
export const PREVIEW_USAGE = `usage: microflows preview <template> (--profile <customer id> | --as <segment>) [--data <json>] [--format text|html|json] [--out <file.html>]
  --profile   render for this customer of the store
  --as        render for a synthetic typical member of a segment (segments/<name>.yaml)
  --data      the send step's data, e.g. '{"discount_pct": 10}'
  --format    text (default: subject, fallbacks, fields read, text part), html, or json (everything)
  --out       also write the HTML to this file (open it in a browser)`;

interface PreviewFlags {
  template: string;
  profile?: string;
  segment?: string;
  data: Record<string, unknown>;
  format: 'text' | 'html' | 'json';
  out?: string;
}

function parseFlags(args: string[]): PreviewFlags | string {
  const [template, ...rest] = args;
  if (!template || template.startsWith('--')) return 'name the template to preview';
  const flags: PreviewFlags = { template, data: {}, format: 'text' };
  for (let i = 0; i < rest.length; i++) {
    const name = rest[i]!;
    const value = rest[i + 1];
    if (!['--profile', '--as', '--data', '--format', '--out'].includes(name)) return `unknown option ${name}`;
    if (value === undefined) return `${name} needs a value`;
    i++;
    if (name === '--profile') flags.profile = value;
    else if (name === '--as') flags.segment = value;
    else if (name === '--out') flags.out = value;
    else if (name === '--format') {
      if (value !== 'text' && value !== 'html' && value !== 'json') return `--format ${value}: use text, html or json`;
      flags.format = value;
    } else {
      try {
        const parsed: unknown = JSON.parse(value);
        if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
        flags.data = parsed as Record<string, unknown>;
      } catch {
        return `--data ${value}: give a JSON object, e.g. '{"discount_pct": 10}'`;
      }
    }
  }
  if ((flags.profile === undefined) === (flags.segment === undefined)) return 'give exactly one of --profile <customer id> and --as <segment>';
  return flags;
}

function summary(preview: TemplatePreview, category: string): string {
  const lines = [
    `template:  ${preview.template} (${category})`,
    `for:       ${preview.subjectOf}`,
    `subject:   ${preview.subject}`,
    ...(preview.preheader !== null ? [`preheader: ${preview.preheader}`] : []),
    preview.fallbacks.length === 0 ? 'fallbacks: none' : `fallbacks: ${preview.fallbacks.length}`,
    ...preview.fallbacks.map((f) => `  ${f.at}  {{${f.expression}}}  (${f.reason})`),
    `reads:     ${preview.fieldsRead.map((f) => f.path).join(', ') || 'no fields'}`,
    '',
    '--- text part ---',
    preview.text,
  ];
  return `${lines.join('\n')}\n`;
}

export async function runPreview(args: string[]): Promise<number> {
  const flags = parseFlags(args);
  if (typeof flags === 'string') {
    console.error(`${flags}\n${PREVIEW_USAGE}`);
    return 1;
  }
  const config = readConfig(process.env, process.cwd());
  const templates = new TemplateLibrary(config.templatesDir, { shopUrl: config.shopUrl });
  if (!templates.has(flags.template)) {
    console.error(`no template "${flags.template}" in ${config.templatesDir}: templates are ${templates.names().join(', ')}`);
    return 1;
  }
  const store = openStore(config);
  try {
    await store.migrate();
    const now = Date.now();
    const profile = flags.segment !== undefined ? await typicalMemberProfile(store, flags.segment, config, now) : undefined;
    const preview = await previewTemplate(
      { templates, store, catalog: catalogReader(store) },
      { template: flags.template, customerId: flags.profile, profile: profile?.profile, data: flags.data, at: now },
    );
    if (profile) preview.subjectOf = profile.description;
    if (flags.out) fs.writeFileSync(flags.out, preview.html);
    if (flags.format === 'html') process.stdout.write(preview.html);
    else if (flags.format === 'json') process.stdout.write(`${JSON.stringify(preview, null, 2)}\n`);
    else process.stdout.write(summary(preview, templates.category(flags.template)) + (flags.out ? `\nHTML written to ${flags.out}\n` : ''));
    return 0;
  } finally {
    await store.close();
  }
}
