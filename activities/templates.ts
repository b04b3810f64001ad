// Loads templates/ (MJML bodies with Handlebars data, a YAML header), partials/ and layouts/, compiles each once
// (core/template-compiler), and renders per recipient with Handlebars only. In dev mode it recompiles when a file
// changes, keeping the last good set when the change does not compile.
import fs from 'node:fs';
import path from 'node:path';
import { InvalidFileError, TemplateError, type FileProblem } from '../core/errors';
import { compileTemplate, renderTemplate, templateHandlebars, type CompiledTemplate, type RenderedTemplate, type TemplateCategory, type TemplateData } from '../core/template-compiler';
import { brandTemplateData, type Brand } from '../core/brand';
import { linkDomainOf, normalizeLinkDomains } from '../core/link-policy';
import type { Recommender } from '../core/template-helpers';
import type { SourceFile } from '../core/template-source';

export interface RenderedEmail extends RenderedTemplate {
  category: TemplateCategory;
  from?: string;
}

/** Per send: how links, the unsubscribe link, the open pixel and recommendation blocks resolve. */
export interface RenderOptions {
  /** Rewrites a link that passed the link policy (tracking, UTM); `literal`: the URL is the template's own text. */
  link?: (url: string, index: number, literal: boolean) => string;
  /** Where links from data may point (core/link-policy); default: the library's. */
  linkDomains?: readonly string[];
  unsubscribeUrl?: string | null;
  /** The customer's preference center link (marketing sends). */
  preferencesUrl?: string | null;
  openPixelUrl?: string | null;
  recommend?: Recommender | null;
  productUrl?: (productId: string) => string | undefined;
  locale?: string;
  timezone?: string | null;
  /** The signed countdown image URL for a deadline (`{{countdown}}`); null or absent: the deadline as text only. */
  countdownUrl?: ((untilMs: number) => string) | null;
  /** The render's moment (epoch ms): a countdown to a deadline not after it renders nothing; default: now. */
  now?: number;
  /** The send's offer codes by pool (`{{offer_code}}`), claimed before the render; null: the pool was empty. */
  offerCodes?: ReadonlyMap<string, string | null> | null;
}

export interface TemplateLibraryOptions {
  /** Base of product URLs when neither the item nor the catalog has one. */
  shopUrl?: string;
  /** Hosts (and subdomains) a link whose target comes from data may point at; default: the shop URL's host. */
  linkDomains?: readonly string[];
  currency?: string;
  locale?: string;
  log?: (message: string) => void;
  /**
   * The sender's brand (brand.yaml): templates read it as `brand.*`, and every marketing template must show its postal
   * address. Absent: marketing templates are checked against a sample address, and render none.
   */
  brand?: Brand | null;
}

interface LoadedSet {
  templates: Map<string, CompiledTemplate>;
  problems: FileProblem[];
}

function readSources(dir: string, display: string): Map<string, SourceFile> {
  const sources = new Map<string, SourceFile>();
  if (!fs.existsSync(dir)) return sources;
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.mjml') || f.endsWith('.hbs')).sort()) {
    sources.set(path.parse(file).name, { file: path.join(display, file), text: fs.readFileSync(path.join(dir, file), 'utf8') });
  }
  return sources;
}

/** Files are named relative to the working directory when inside it (`templates/cart.mjml:12`), else absolute. */
function displayDir(dir: string): string {
  const relative = path.relative(process.cwd(), path.resolve(dir));
  return relative === '' ? '.' : relative.startsWith('..') || path.isAbsolute(relative) ? path.resolve(dir) : relative;
}

/**
 * Compiles every template of `dir`; problems (errors and warnings) of all of them, with file:line. Marketing templates
 * are checked to show `brand`'s postal address (a sample one when absent) and the unsubscribe and preference links.
 */
export function compileTemplateDir(dir: string, handlebars = templateHandlebars(), brand: Brand | null = null): LoadedSet {
  const shown = displayDir(dir);
  const library = { partials: readSources(path.join(dir, 'partials'), path.join(shown, 'partials')), layouts: readSources(path.join(dir, 'layouts'), path.join(shown, 'layouts')) };
  const templates = new Map<string, CompiledTemplate>();
  const problems: FileProblem[] = [];
  if (!fs.existsSync(dir)) return { templates, problems };
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.mjml')).sort()) {
    const name = file.slice(0, -'.mjml'.length);
    const result = compileTemplate(name, { file: path.join(shown, file), text: fs.readFileSync(path.join(dir, file), 'utf8') }, library, handlebars, brand ? { brand: brandTemplateData(brand) } : {});
    problems.push(...result.problems);
    if (result.template) templates.set(name, result.template);
  }
  return { templates, problems };
}

export class TemplateLibrary {
  private readonly handlebars = templateHandlebars();
  private templates = new Map<string, CompiledTemplate>();
  private watcher: fs.FSWatcher | null = null;
  /** Warnings of the loaded set (errors refuse the load). */
  warnings: FileProblem[] = [];
  /** Where links from data may point, unless a render says otherwise. */
  readonly linkDomains: readonly string[];

  constructor(
    readonly dir: string,
    private readonly options: TemplateLibraryOptions = {},
  ) {
    const shopDomain = linkDomainOf(this.shopUrl());
    this.linkDomains = normalizeLinkDomains(options.linkDomains ?? (shopDomain ? [shopDomain] : []));
    this.load();
  }

  /** Compiles all templates; throws InvalidFileError listing every error when any template does not compile. */
  load(): void {
    const loaded = compileTemplateDir(this.dir, this.handlebars, this.options.brand ?? null);
    const errors = loaded.problems.filter((p) => p.severity === 'error');
    if (errors.length > 0) throw new InvalidFileError(loaded.problems);
    this.templates = loaded.templates;
    this.warnings = loaded.problems;
  }

  /**
   * Dev mode: recompiles when a file under the templates folder changes (debounced). A change that does not
   * compile is reported and the previous templates stay in use.
   */
  watch(): void {
    if (this.watcher || !fs.existsSync(this.dir)) return;
    let timer: NodeJS.Timeout | null = null;
    const log = this.options.log ?? ((m: string) => console.log(m));
    this.watcher = fs.watch(this.dir, { recursive: true }, () => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        try {
          this.load();
          log(`[templates] reloaded ${this.templates.size} templates from ${this.dir}`);
        } catch (err) {
          log(`[templates] not reloaded, the previous templates stay in use:\n${(err as Error).message}`);
        }
      }, 100);
    });
  }

  close(): void {
    this.watcher?.close();
    this.watcher = null;
  }

  names(): string[] {
    return [...this.templates.keys()];
  }

  has(name: string): boolean {
    return this.templates.has(name);
  }

  get(name: string): CompiledTemplate {
    const template = this.templates.get(name);
    if (!template) throw new TemplateError(`template "${name}" not found in ${this.dir} (expected ${name}.mjml)`);
    return template;
  }

  /** The sender's brand the templates render with, if any. */
  get brand(): Brand | null {
    return this.options.brand ?? null;
  }

  /** The loaded marketing templates, which need the brand's postal address. */
  marketingNames(): string[] {
    return [...this.templates.values()].filter((template) => template.header.category === 'marketing').map((template) => template.name);
  }

  category(name: string): TemplateCategory {
    return this.get(name).header.category;
  }

  /** Handlebars only: the MJML was compiled at load. */
  render(name: string, data: TemplateData, options: RenderOptions = {}): RenderedEmail {
    const template = this.get(name);
    const brand = this.options.brand ? { brand: brandTemplateData(this.options.brand) } : {};
    const rendered = renderTemplate(template, { shop: { url: this.shopUrl(), currency: this.options.currency ?? 'USD' }, ...brand, ...data }, {
      locale: options.locale ?? (typeof data.profile.locale === 'string' ? data.profile.locale : undefined) ?? this.options.locale ?? 'en-US',
      timezone: options.timezone ?? (typeof data.profile.timezone === 'string' ? data.profile.timezone : null),
      currency: (typeof data.profile.currency === 'string' ? data.profile.currency : undefined) ?? this.options.currency ?? 'USD',
      shopUrl: this.shopUrl(),
      linkDomains: options.linkDomains ? normalizeLinkDomains(options.linkDomains) : this.linkDomains,
      link: options.link ?? ((url) => url),
      unsubscribeUrl: options.unsubscribeUrl ?? null,
      preferencesUrl: options.preferencesUrl ?? null,
      openPixelUrl: options.openPixelUrl ?? null,
      recommend: options.recommend ?? null,
      productUrl: options.productUrl ?? (() => undefined),
      countdownUrl: options.countdownUrl ?? null,
      now: options.now ?? Date.now(),
      offerCodes: options.offerCodes ?? null,
    });
    return { ...rendered, category: template.header.category, from: template.header.from };
  }

  private shopUrl(): string {
    return this.options.shopUrl ?? 'https://shop.example';
  }
}
