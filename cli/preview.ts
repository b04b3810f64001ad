// `microflows preview <template> --profile <id>`: what that customer would get, rendered exactly as a send renders
// it (same data, catalog, fallbacks, and the trigger event given with --event), without tracking tokens. Prints the
// subject, preheader, the fallbacks used, the fields read and the text part; --format html|json prints that instead,
// --out writes the HTML to a file.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { catalogReader } from '../activities/catalog';
import { parsePreviewEvent, previewTemplate, type TemplatePreview } from '../activities/preview';
import { TemplateLibrary } from '../activities/templates';
import { SAMPLE_BRAND } from '../core/brand';
import { readConfig } from '../core/config';
import { loadBrandFile } from './brand-file';
import { openStore } from '../store/open-store';
import { typicalMemberProfile } from './typical-member';

export const PREVIEW_ARGS = '<template> --profile <id> | --as <segment>';
export const PREVIEW_USAGE = `usage: microflows preview <template> (--profile <customer id> | --as <segment>) [--event <json>] [--data <json>] [--format text|html|json] [--out <file.html>]
  --profile   render for this customer of the store
  --as        render for a synthetic typical member of a segment (segments/<name>.yaml)
  --event     the trigger event, as a track call: '{"event": "Order Completed", "properties": {"order_id": "o-1", "total": 42}}'
              (read as ingest reads one; userId may be left out), for templates that show it (event.*)
  --data      the send step's data, e.g. '{"discount_pct": 10}'
  --format    text (default: subject, fallbacks, fields read, text part), html, or json (everything)
  --out       also write the HTML to this file (open it in a browser)`;

interface PreviewFlags {
  template: string;
  profile?: string;
  segment?: string;
  /** The --event JSON, read once the moment of the preview is known. */
  event?: string;
  data: Record<string, unknown>;
  format: 'text' | 'html' | 'json';
  out?: string;
}

function parseFlags(args: string[]): PreviewFlags | string {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: { profile: { type: 'string' }, as: { type: 'string' }, event: { type: 'string' }, data: { type: 'string' }, format: { type: 'string' }, out: { type: 'string' } },
    });
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  const { values, positionals } = parsed;
  const [template, ...extra] = positionals;
  if (!template) return 'name the template to preview';
  if (extra.length > 0) return `unexpected argument "${extra[0]}": name one template`;
  const flags: PreviewFlags = { template, profile: values.profile, segment: values.as, event: values.event, out: values.out, data: {}, format: 'text' };
  if (values.format !== undefined) {
    if (values.format !== 'text' && values.format !== 'html' && values.format !== 'json') return `--format ${values.format}: use text, html or json`;
    flags.format = values.format;
  }
  if (values.data !== undefined) {
    try {
      const data: unknown = JSON.parse(values.data);
      if (!data || typeof data !== 'object' || Array.isArray(data)) throw new Error('not an object');
      flags.data = data as Record<string, unknown>;
    } catch {
      return `--data ${values.data}: give a JSON object, e.g. '{"discount_pct": 10}'`;
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
  // Before brand.yaml exists, footers show a sample address rather than none.
  const brand = loadBrandFile(config.brandFile) ?? SAMPLE_BRAND;
  const templates = new TemplateLibrary(config.templatesDir, { shopUrl: config.shopUrl, linkDomains: config.linkDomains, brand });
  if (!templates.has(flags.template)) {
    console.error(`no template "${flags.template}" in ${config.templatesDir}: templates are ${templates.names().join(', ')}`);
    return 1;
  }
  const now = Date.now();
  let event;
  try {
    event = flags.event === undefined ? undefined : parsePreviewEvent(flags.event, '--event', flags.profile, now);
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    return 1;
  }
  const store = openStore(config);
  try {
    await store.migrate();
    const profile = flags.segment !== undefined ? await typicalMemberProfile(store, flags.segment, config, now) : undefined;
    const preview = await previewTemplate(
      { templates, store, catalog: catalogReader(store) },
      { template: flags.template, customerId: flags.profile, profile: profile?.profile, data: flags.data, event, at: now },
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
