// Loads templates/ (MJML bodies with Handlebars data, a YAML header for subject and category) and
// renders them per recipient. The full template system (compile-once, blocks, fallbacks) grows here.
import fs from 'node:fs';
import path from 'node:path';
import Handlebars from 'handlebars';
import mjml2html from 'mjml';
import YAML from 'yaml';
import { TemplateError } from '../core/errors';

export interface TemplateHeader {
  subject: string;
  preheader?: string;
  from?: string;
  /** marketing emails need email consent; transactional ones do not. */
  category: 'marketing' | 'transactional';
}

export interface RenderedEmail {
  subject: string;
  html: string;
  text: string;
  category: 'marketing' | 'transactional';
  from?: string;
}

interface LoadedTemplate {
  name: string;
  file: string;
  header: TemplateHeader;
  subject: Handlebars.TemplateDelegate;
  body: Handlebars.TemplateDelegate;
}

const HEADER = /^---\r?\n([\s\S]*?)\r?\n---\r?\n/;

function parseHeader(file: string, source: string): { header: TemplateHeader; body: string; bodyLine: number } {
  const match = HEADER.exec(source);
  if (!match) throw new TemplateError(`${file}:1: a template starts with a header between "---" lines holding at least "subject:"`);
  const raw = YAML.parse(match[1] ?? '') as Record<string, unknown> | null;
  if (!raw || typeof raw.subject !== 'string' || raw.subject.trim() === '') {
    throw new TemplateError(`${file}:2: the header needs a "subject:" line`);
  }
  const category = raw.category ?? 'marketing';
  if (category !== 'marketing' && category !== 'transactional') {
    throw new TemplateError(`${file}: header "category" must be marketing or transactional, got ${JSON.stringify(category)}`);
  }
  return {
    header: {
      subject: raw.subject,
      preheader: typeof raw.preheader === 'string' ? raw.preheader : undefined,
      from: typeof raw.from === 'string' ? raw.from : undefined,
      category,
    },
    body: source.slice(match[0].length),
    bodyLine: match[0].split('\n').length,
  };
}

/** A crude but safe HTML → text for the plain-text alternative. */
export function htmlToText(html: string): string {
  return html
    .replace(/<(style|script|head)[\s\S]*?<\/\1>/gi, '')
    .replace(/<a [^>]*href="([^"]*)"[^>]*>([\s\S]*?)<\/a>/gi, '$2 ($1)')
    .replace(/<(br|\/p|\/div|\/tr|\/h[1-6]|\/li)[^>]*>/gi, '\n')
    .replace(/<[^>]+>/g, '')
    .replace(/&nbsp;/g, ' ')
    .replace(/&times;/g, '×')
    .replace(/&#(\d+);/g, (_m, code: string) => String.fromCodePoint(Number(code)))
    .replace(/&amp;/g, '&')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/[ \t]+/g, ' ')
    .replace(/\n\s*\n+/g, '\n\n')
    .trim();
}

export class TemplateLibrary {
  private readonly templates = new Map<string, LoadedTemplate>();
  private readonly handlebars = Handlebars.create();

  constructor(readonly dir: string) {
    this.handlebars.registerHelper('money', (value: unknown, currency: unknown) => {
      const amount = typeof value === 'number' ? value : Number(value);
      if (!Number.isFinite(amount)) return '';
      return new Intl.NumberFormat('en-US', { style: 'currency', currency: typeof currency === 'string' ? currency : 'USD' }).format(amount);
    });
    this.handlebars.registerHelper('default', (value: unknown, fallback: unknown) =>
      value === undefined || value === null || value === '' ? fallback : value,
    );
    this.load();
  }

  private load(): void {
    const partialsDir = path.join(this.dir, 'partials');
    if (fs.existsSync(partialsDir)) {
      for (const file of fs.readdirSync(partialsDir).filter((f) => f.endsWith('.mjml') || f.endsWith('.hbs')).sort()) {
        this.handlebars.registerPartial(path.parse(file).name, fs.readFileSync(path.join(partialsDir, file), 'utf8'));
      }
    }
    if (!fs.existsSync(this.dir)) return;
    for (const file of fs.readdirSync(this.dir).filter((f) => f.endsWith('.mjml')).sort()) {
      const full = path.join(this.dir, file);
      const { header, body } = parseHeader(full, fs.readFileSync(full, 'utf8'));
      const name = file.slice(0, -'.mjml'.length);
      try {
        this.templates.set(name, {
          name,
          file: full,
          header,
          // Subjects are plain text, not HTML: no entity escaping.
          subject: this.handlebars.compile(header.subject, { strict: false, noEscape: true }),
          body: this.handlebars.compile(body, { strict: false }),
        });
      } catch (err) {
        throw new TemplateError(`${full}: ${(err as Error).message}`);
      }
    }
  }

  names(): string[] {
    return [...this.templates.keys()];
  }

  has(name: string): boolean {
    return this.templates.has(name);
  }

  async render(name: string, data: Record<string, unknown>): Promise<RenderedEmail> {
    const template = this.templates.get(name);
    if (!template) throw new TemplateError(`template "${name}" not found in ${this.dir} (expected ${name}.mjml)`);
    // mjml 4 returns synchronously; its typings (and mjml 5) say Promise: awaiting covers both.
    const { html, errors } = await Promise.resolve(mjml2html(template.body(data), { validationLevel: 'soft', filePath: template.file }));
    if (errors.length > 0 && !html) {
      throw new TemplateError(`${template.file}:${errors[0]?.line}: ${errors[0]?.message}`);
    }
    return {
      subject: template.subject(data).trim(),
      html,
      text: htmlToText(html),
      category: template.header.category,
      from: template.header.from,
    };
  }
}
