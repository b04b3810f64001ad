// The Handlebars helpers templates may use, and the per-render state they share: locale-aware money, number and
// date formatting, pluralize, default, product URLs, `when` (the project's one condition evaluator), product
// recommendations, tracked links (under the link policy: core/link-policy) and the unsubscribe URL. The built-in if/unless/each/with are wrapped so that
// every fallback a render takes is recorded with the template line it came from. No helper throws on bad data:
// a value it cannot format gives its fallback (an empty string at worst), never a broken email.
import Handlebars from 'handlebars';
import { valueAtPath, type ConditionTester } from './conditions';
import { checkDataLink, checkImageSource, checkLiteralLink } from './link-policy';
import { countdownSentence, parseDeadline } from './countdown';

/** A template position that can fall back: a conditional block, a `default`, a recommendation. */
export interface TemplateSite {
  /** `file:line` */
  at: string;
  /** What was written, e.g. `#each profile.cart` or `default profile.first_name`. */
  expression: string;
  /** `when` blocks: the compiled condition and the fields it reads. */
  condition?: ConditionTester;
  conditionFields?: string[];
}

/** One fallback a render used. */
export interface FallbackUse {
  at: string;
  expression: string;
  /** Why: the field was missing or empty, or a recommendation fell back to a wider source. */
  reason: string;
}

export interface ProductLike {
  product_id: string;
  url?: string;
}

/** Recommendations as the render sees them: `recommend(kind, profile, options)`, already bound to a catalog. */
export type Recommender = (
  kind: string,
  profile: Record<string, unknown>,
  options: { limit?: number; productId?: string },
) => { items: unknown[]; fallback: boolean; source: string };

/** Per render: what helpers need beyond the data, and where they record fallbacks. */
export interface RenderRuntime {
  sites: TemplateSite[];
  fallbacks: FallbackUse[];
  locale: string;
  timezone: string | null;
  currency: string;
  shopUrl: string;
  /** Hosts (and their subdomains) a link whose target comes from data may point at; normalized (core/link-policy). */
  linkDomains: readonly string[];
  /**
   * Rewrites one link of the email (tracking, UTM) that passed the link policy; `index` numbers the template's links,
   * `literal` says the URL is the template's own text rather than data.
   */
  link: (url: string, index: number, literal: boolean) => string;
  unsubscribeUrl: string | null;
  /** The customer's preference center link (marketing emails); null: `#preferences` (previews, transactional). */
  preferencesUrl?: string | null;
  openPixelUrl: string | null;
  recommend: Recommender | null;
  productUrl: (productId: string) => string | undefined;
  /** The render's moment (epoch ms): a `countdown` whose deadline is not after it renders nothing. Absent: not checked. */
  now?: number;
  /** The signed countdown image URL for a deadline (core/countdown countdownImageUrl); null: the deadline as text only. */
  countdownUrl?: ((untilMs: number) => string) | null;
  /** The send's offer codes by pool (`{{offer_code pool="…"}}`), claimed before the render; null: that pool was empty. */
  offerCodes?: ReadonlyMap<string, string | null> | null;
}

interface HelperOptions {
  fn: (context: unknown, options?: unknown) => string;
  inverse: (context: unknown, options?: unknown) => string;
  hash: Record<string, unknown>;
  data: { mf?: RenderRuntime; root?: Record<string, unknown> } & Record<string, unknown>;
}

/**
 * The render in progress. Renders are synchronous, so there is one at a time per thread: templates compiled without
 * Handlebars' data frames (they cost two closures per block call) reach their runtime and root data here.
 */
let current: { runtime: RenderRuntime; root: Record<string, unknown> } | null = null;

/** Runs one render with its runtime reachable by the helpers. */
export function withRenderRuntime<T>(runtime: RenderRuntime, root: Record<string, unknown>, render: () => T): T {
  const previous = current;
  current = { runtime, root };
  try {
    return render();
  } finally {
    current = previous;
  }
}

function rootOf(options: HelperOptions): Record<string, unknown> {
  return options?.data?.root ?? current?.root ?? {};
}

function runtimeOf(options: HelperOptions): RenderRuntime | undefined {
  return options?.data?.mf ?? current?.runtime;
}

function recordFallback(options: HelperOptions, reason: string): void {
  const mf = runtimeOf(options);
  const site = typeof options.hash?.__site === 'number' ? mf?.sites[options.hash.__site] : undefined;
  if (mf && site) mf.fallbacks.push({ at: site.at, expression: site.expression, reason });
}

/** Handlebars' own notion of "nothing here" (`if` and `each` take the else branch for these). */
function isEmpty(value: unknown, includeZero = false): boolean {
  if (value === 0) return !includeZero;
  if (Array.isArray(value)) return value.length === 0;
  if (value && typeof value === 'object') return Object.keys(value).length === 0;
  return !value;
}

const numberFormats = new Map<string, Intl.NumberFormat>();
const dateFormats = new Map<string, Intl.DateTimeFormat>();

/** Intl formatters are slow to build and cheap to use: one per locale and style, kept. A bad locale falls back to en-US. */
function numberFormat(locale: string, currency: string | undefined, decimals: number | undefined): Intl.NumberFormat {
  const key = `${locale}|${currency ?? ''}|${decimals ?? ''}`;
  let format = numberFormats.get(key);
  if (!format) {
    const options: Intl.NumberFormatOptions = {
      ...(currency ? { style: 'currency', currency } : {}),
      ...(decimals === undefined ? {} : { minimumFractionDigits: decimals, maximumFractionDigits: decimals }),
    };
    try {
      format = new Intl.NumberFormat(locale, options);
    } catch {
      format = new Intl.NumberFormat('en-US', { ...options, ...(currency ? { currency: /^[A-Z]{3}$/.test(currency) ? currency : 'USD' } : {}) });
    }
    numberFormats.set(key, format);
  }
  return format;
}

/** Formatting a number costs about a microsecond; the same prices and counts recur across recipients, so results are kept. */
const formatted = new WeakMap<Intl.NumberFormat, Map<number, string>>();
const MAX_FORMATTED_PER_FORMAT = 10_000;

function formatNumber(format: Intl.NumberFormat, value: number): string {
  let known = formatted.get(format);
  if (!known) formatted.set(format, (known = new Map()));
  let text = known.get(value);
  if (text === undefined) {
    if (known.size >= MAX_FORMATTED_PER_FORMAT) known.clear();
    known.set(value, (text = format.format(value)));
  }
  return text;
}

const DATE_STYLES: Record<string, Intl.DateTimeFormatOptions> = {
  short: { dateStyle: 'short' },
  medium: { dateStyle: 'medium' },
  long: { dateStyle: 'long' },
  full: { dateStyle: 'full' },
  datetime: { dateStyle: 'medium', timeStyle: 'short' },
  time: { timeStyle: 'short' },
};

function dateFormat(locale: string, style: string, timeZone: string | null): Intl.DateTimeFormat {
  const key = `${locale}|${style}|${timeZone ?? ''}`;
  let format = dateFormats.get(key);
  if (!format) {
    const options = { ...(DATE_STYLES[style] ?? DATE_STYLES.medium), ...(timeZone ? { timeZone } : { timeZone: 'UTC' }) };
    try {
      format = new Intl.DateTimeFormat(locale, options);
    } catch {
      format = new Intl.DateTimeFormat('en-US', { ...(DATE_STYLES[style] ?? DATE_STYLES.medium), timeZone: 'UTC' });
    }
    dateFormats.set(key, format);
  }
  return format;
}

function asNumber(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'string' && value.trim() !== '') {
    const n = Number(value);
    return Number.isFinite(n) ? n : undefined;
  }
  return undefined;
}

function asString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function localeOf(options: HelperOptions): string {
  return asString(options.hash?.locale) ?? runtimeOf(options)?.locale ?? 'en-US';
}

/** Helpers with the positional arguments as written, then Handlebars' options object last. */
type Helper = (...args: unknown[]) => unknown;

function split(args: unknown[]): { params: unknown[]; options: HelperOptions } {
  return { params: args.slice(0, -1), options: args[args.length - 1] as HelperOptions };
}

/** The helpers templates may call by name; validation reports any other. */
export const TEMPLATE_HELPERS = ['money', 'number', 'date', 'pluralize', 'default', 'product_url', 'recommend', 'unsubscribe_url', 'preferences_url', 'lookup', 'line_total', 'subtotal', 'offer_code', 'countdown'] as const;

/** A line of a cart or order: its price times its quantity (1 when none is given); undefined without a price. */
export function lineTotal(item: unknown): number | undefined {
  if (!item || typeof item !== 'object') return undefined;
  const price = asNumber((item as Record<string, unknown>).price);
  if (price === undefined) return undefined;
  const quantity = asNumber((item as Record<string, unknown>).quantity) ?? 1;
  // Cents, so 3 × 19.99 is 59.97 rather than 59.970000000000006.
  return Math.round(price * Math.max(quantity, 0) * 100) / 100;
}

/** The sum of the line totals of a list; undefined when no line has a price (the template shows its fallback). */
export function subtotalOf(items: unknown): number | undefined {
  if (!Array.isArray(items)) return undefined;
  const totals = items.map(lineTotal).filter((total): total is number => total !== undefined);
  return totals.length === 0 ? undefined : Math.round(totals.reduce((sum, total) => sum + total, 0) * 100) / 100;
}

/** A BCP 47 language tag for `<html lang>` from the customer's locale ("de-DE", "pt_BR" → "pt-BR"); "en" otherwise. */
export function languageTag(locale: string | null | undefined): string {
  const tag = (locale ?? '').trim().replace(/_/g, '-');
  return /^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$/.test(tag) ? tag : 'en';
}
/** Block helpers; each needs an `{{else}}`. */
export const TEMPLATE_BLOCK_HELPERS = ['if', 'unless', 'each', 'with', 'when'] as const;

/** Registers every template helper on `handlebars` (an isolated instance from Handlebars.create()). */
export function registerTemplateHelpers(handlebars: typeof Handlebars): void {
  const builtin = {
    each: handlebars.helpers.each as Helper,
    with: handlebars.helpers.with as Helper,
  };
  const helpers: Record<string, Helper> = {
    // if, unless and with as Handlebars defines them (the data is JSON: no function values to call), recording
    // the fallback when the value is missing.
    if(this: unknown, ...args) {
      const options = args[args.length - 1] as HelperOptions;
      if (isEmpty(args[0], options.hash?.includeZero === true)) {
        recordFallback(options, 'empty or missing');
        return options.inverse(this);
      }
      return options.fn(this);
    },
    unless(this: unknown, ...args) {
      const options = args[args.length - 1] as HelperOptions;
      // `unless` shows its main branch when the value is missing: that branch is the fallback.
      if (isEmpty(args[0], options.hash?.includeZero === true)) {
        recordFallback(options, 'empty or missing');
        return options.fn(this);
      }
      return options.inverse(this);
    },
    each(this: unknown, ...args) {
      const { params, options } = split(args);
      if (isEmpty(params[0])) recordFallback(options, 'empty or missing');
      return builtin.each.call(this, ...args);
    },
    with(this: unknown, ...args) {
      const { params, options } = split(args);
      if (isEmpty(params[0])) recordFallback(options, 'empty or missing');
      return builtin.with.call(this, ...args);
    },
    when(this: unknown, ...args) {
      const { options } = split(args);
      const mf = runtimeOf(options);
      const site = typeof options.hash?.__site === 'number' ? mf?.sites[options.hash.__site] : undefined;
      if (!site?.condition) return options.inverse(this);
      const root = rootOf(options);
      const context = { profile: root.profile as Record<string, unknown>, consent: root.consent as Record<string, unknown>, event: root.event as Record<string, unknown> };
      if (site.condition(context)) return options.fn(this);
      const missing = (site.conditionFields ?? []).filter((field) => valueAtPath(root, field) === undefined || valueAtPath(root, field) === null);
      if (missing.length > 0) recordFallback(options, `missing ${missing.join(', ')}`);
      return options.inverse(this);
    },
    default(...args) {
      const { params, options } = split(args);
      const [value, fallback] = params;
      if (value === undefined || value === null || value === '' || (Array.isArray(value) && value.length === 0)) {
        recordFallback(options, 'empty or missing');
        return fallback ?? '';
      }
      return value;
    },
    money(...args) {
      const { params, options } = split(args);
      const amount = asNumber(params[0]);
      if (amount === undefined) return asString(options.hash?.fallback) ?? '';
      const currency = asString(params[1]) ?? asString(options.hash?.currency) ?? runtimeOf(options)?.currency ?? 'USD';
      return formatNumber(numberFormat(localeOf(options), currency.toUpperCase(), undefined), amount);
    },
    number(...args) {
      const { params, options } = split(args);
      const value = asNumber(params[0]);
      if (value === undefined) return asString(options.hash?.fallback) ?? '';
      const decimals = asNumber(params[1]) ?? asNumber(options.hash?.decimals);
      return formatNumber(numberFormat(localeOf(options), undefined, decimals === undefined ? undefined : Math.min(Math.max(Math.round(decimals), 0), 20)), value);
    },
    date(...args) {
      const { params, options } = split(args);
      const raw = params[0];
      const ms = typeof raw === 'number' ? raw : typeof raw === 'string' ? Date.parse(raw) : raw instanceof Date ? raw.getTime() : NaN;
      if (!Number.isFinite(ms)) return asString(options.hash?.fallback) ?? '';
      const style = asString(params[1]) ?? asString(options.hash?.format) ?? 'medium';
      const timeZone = asString(options.hash?.timezone) ?? runtimeOf(options)?.timezone ?? null;
      return dateFormat(localeOf(options), style, timeZone).format(ms);
    },
    pluralize(...args) {
      const { params, options } = split(args);
      const count = asNumber(params[0]) ?? 0;
      const singular = asString(params[1]) ?? '';
      const plural = asString(params[2]) ?? `${singular}s`;
      const word = count === 1 ? singular : plural;
      return options.hash?.bare === true ? word : `${formatNumber(numberFormat(localeOf(options), undefined, undefined), count)} ${word}`;
    },
    product_url(...args) {
      const { params, options } = split(args);
      const mf = runtimeOf(options);
      const target = params[0];
      const product = target && typeof target === 'object' ? (target as ProductLike) : undefined;
      const id = product ? product.product_id : typeof target === 'string' || typeof target === 'number' ? String(target) : undefined;
      if (product?.url) return product.url;
      if (id === undefined || id === '') return mf?.shopUrl ?? '';
      return mf?.productUrl(id) ?? `${(mf?.shopUrl ?? '').replace(/\/+$/, '')}/products/${encodeURIComponent(id)}`;
    },
    recommend(this: unknown, ...args) {
      const { params, options } = split(args);
      const mf = runtimeOf(options);
      const kind = asString(params[0]) ?? 'top_rated';
      const limit = asNumber(options.hash?.limit);
      const productId = options.hash?.product === undefined || options.hash?.product === null ? undefined : String(options.hash.product);
      const profile = (rootOf(options).profile as Record<string, unknown> | undefined) ?? {};
      if (!mf?.recommend) {
        // Without a catalog, the cart and order blocks still show the items as the events described them.
        const own = kind === 'cart' ? profile.cart : kind === 'last_order' ? profile.last_order_products : undefined;
        return Array.isArray(own) ? own.slice(0, limit ?? 4) : [];
      }
      const result = mf.recommend(kind, profile, { limit, productId });
      if (result.fallback) recordFallback(options, `recommended from ${result.source}`);
      return result.items;
    },
    line_total(...args) {
      const { params } = split(args);
      return lineTotal(params[0]);
    },
    subtotal(...args) {
      const { params } = split(args);
      return subtotalOf(params[0]);
    },
    __lang(...args) {
      const { options } = split(args);
      return languageTag(runtimeOf(options)?.locale);
    },
    unsubscribe_url(...args) {
      const { options } = split(args);
      return runtimeOf(options)?.unsubscribeUrl ?? '#unsubscribe';
    },
    preferences_url(...args) {
      const { options } = split(args);
      return runtimeOf(options)?.preferencesUrl ?? '#preferences';
    },
    // The code the send claimed from the pool (activities/index.ts); '' when the pool had none, so
    // `{{#if (offer_code pool="…")}}` shows its {{else}}, and the fallback is recorded.
    offer_code(...args) {
      const { options } = split(args);
      const pool = asString(options.hash?.pool) ?? '';
      const code = runtimeOf(options)?.offerCodes?.get(pool);
      if (code) return code;
      recordFallback(options, pool === '' ? 'offer code: no pool named (pool=data.<key> with no such key in the send step\'s data)' : `offer code pool "${pool}" is empty`);
      return '';
    },
    // A countdown timer (core/countdown): the image of the time left, drawn when the email is opened, its alt text the
    // sentence that states the deadline; in text (the compiler adds text=true) the sentence alone, and without the
    // image endpoint (no tracking configured) the sentence as text. A deadline missing, unreadable or not after the
    // send renders nothing and records the fallback: the copy around it belongs in an {{#if}} on the same field.
    countdown(...args) {
      const { options } = split(args);
      const mf = runtimeOf(options);
      const raw = options.hash?.until;
      const until = parseDeadline(raw);
      if (until === undefined) {
        recordFallback(
          options,
          raw === undefined || raw === null || raw === ''
            ? 'countdown: until is missing'
            : `countdown: until ${JSON.stringify(raw)} is not a time: give an ISO 8601 time with its zone, e.g. "2026-12-24T18:00:00Z", or epoch milliseconds`,
        );
        return '';
      }
      if (mf?.now !== undefined && until <= mf.now) {
        recordFallback(options, `countdown: until ${new Date(until).toISOString().replace('.000Z', 'Z')} is not in the future`);
        return '';
      }
      const sentence = countdownSentence(until, asString(options.hash?.label) ?? 'Offer ends', localeOf(options), asString(options.hash?.timezone) ?? mf?.timezone ?? null);
      const url = options.hash?.text === true ? null : mf?.countdownUrl?.(until);
      if (!url) return sentence;
      return new handlebars.SafeString(
        `<img src="${escapeAttribute(url)}" width="480" alt="${handlebars.escapeExpression(sentence)}" style="display:block;border:0;width:480px;max-width:100%;height:auto;" />`,
      );
    },
    // A link site (the compiler puts one where each href was): answers the whole attribute, `href="…"` (in text,
    // ` (…)` after the label), or nothing at all when the link policy refuses the URL: the text stays, unlinked, and
    // the fallback is recorded with why.
    __link(this: unknown, ...args) {
      const { params, options } = split(args);
      const text = options.hash?.text === true;
      const inner = options.fn(this);
      const mf = runtimeOf(options);
      const literal = options.hash?.literal === true;
      const href = text ? inner : decodeEntities(inner);
      const verdict = literal ? checkLiteralLink(href) : checkDataLink(href, mf?.linkDomains ?? []);
      if (!verdict.ok) {
        recordFallback(options, `not linked: ${verdict.reason}`);
        return '';
      }
      const rewritten = mf ? mf.link(verdict.url, asNumber(params[0]) ?? 0, literal) : verdict.url;
      return text ? ` (${rewritten})` : `href="${escapeAttribute(rewritten)}"`;
    },
    // An image whose source comes from data: `src="…"` for an http(s) URL, nothing otherwise (the alt text shows).
    __src(this: unknown, ...args) {
      const { options } = split(args);
      const verdict = checkImageSource(decodeEntities(options.fn(this)));
      if (!verdict.ok) {
        recordFallback(options, `no image: ${verdict.reason}`);
        return '';
      }
      return `src="${escapeAttribute(verdict.url)}"`;
    },
    __open_pixel(...args) {
      const { options } = split(args);
      const url = runtimeOf(options)?.openPixelUrl;
      if (!url) return '';
      return new handlebars.SafeString(`<img src="${handlebars.escapeExpression(url)}" width="1" height="1" alt="" style="display:block;border:0;width:1px;height:1px;" />`);
    },
  };
  for (const [name, helper] of Object.entries(helpers)) handlebars.registerHelper(name, helper);
  // Templates never log, and a missing helper is a validation error rather than a silent empty string.
  handlebars.unregisterHelper('log');
}

const ATTRIBUTE_SPECIAL = /[&"<>]/;

function escapeAttribute(value: string): string {
  // Tracked links are base64url and URL characters: usually nothing to escape, and no copy to make.
  if (!ATTRIBUTE_SPECIAL.test(value)) return value;
  return value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0', times: '×' };

export function decodeEntities(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, body: string) => {
    if (body[0] === '#') {
      const code = body[1] === 'x' || body[1] === 'X' ? parseInt(body.slice(2), 16) : parseInt(body.slice(1), 10);
      return Number.isFinite(code) && code >= 0 && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return ENTITIES[body.toLowerCase()] ?? whole;
  });
}
