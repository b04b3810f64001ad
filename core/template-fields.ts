// What a template reads, found by walking its Handlebars syntax tree: every field path (resolved through `each` and
// `with` scopes, so `name` inside `{{#each profile.cart}}` reads `profile.cart[].name`), the helpers it calls that do
// not exist, and the fields that no profile, event, catalog or flow field provides. Pure.
import { TEMPLATE_BLOCK_HELPERS, TEMPLATE_HELPERS } from './template-helpers';

type Node = hbs.AST.Node;

export interface FieldRead {
  /** `profile.cart[].name` */
  path: string;
  /** 1-based line in the walked source. */
  line: number;
}

export interface TemplateReads {
  fields: FieldRead[];
  unknownHelpers: Array<{ name: string; line: number }>;
}

/** Helpers the compiler injects; authors do not write them. */
const INTERNAL_HELPERS = ['__link', '__open_pixel'];
const HELPERS = new Set<string>([...TEMPLATE_HELPERS, ...TEMPLATE_BLOCK_HELPERS, ...INTERNAL_HELPERS]);
/** What each recommendation item is, for the fields read inside `{{#each (recommend …)}}`. */
const RECOMMENDATION_SCOPE = 'product[]';

interface Scope {
  base: string;
  /** `as |item index|` names → the path they stand for. */
  params: Map<string, string>;
}

function join(base: string, rest: string): string {
  return base === '' ? rest : rest === '' ? base : `${base}.${rest}`;
}

/** `last_order_products.0.name` → `last_order_products[].name`. */
function normalize(parts: string[]): string {
  return parts.reduce((path, part) => (/^\d+$/.test(part) ? `${path}[]` : path === '' ? part : `${path}.${part}`), '');
}

/** Walks a parsed template (`Handlebars.parse`) and lists what it reads. */
export function templateReads(program: hbs.AST.Program): TemplateReads {
  const fields: FieldRead[] = [];
  const unknownHelpers: TemplateReads['unknownHelpers'] = [];
  const scopes: Scope[] = [{ base: '', params: new Map() }];

  const resolve = (path: hbs.AST.PathExpression): string | null => {
    if (path.data) {
      // @root.profile.x reads profile.x; @index, @key, @first, @last are loop state, not fields.
      return path.parts[0] === 'root' ? normalize(path.parts.slice(1)) : null;
    }
    const scope = scopes[Math.max(scopes.length - 1 - path.depth, 0)]!;
    const [head, ...tail] = path.parts;
    if (head !== undefined && path.depth === 0) {
      for (let i = scopes.length - 1; i >= 0; i--) {
        const bound = scopes[i]!.params.get(head);
        if (bound !== undefined) return join(bound, normalize(tail));
      }
    }
    return join(scope.base, normalize(path.parts));
  };

  const read = (node: Node | undefined): void => {
    if (!node) return;
    if (node.type === 'PathExpression') {
      const path = resolve(node as hbs.AST.PathExpression);
      if (path !== null && path !== '') fields.push({ path, line: node.loc.start.line });
    } else if (node.type === 'SubExpression') call(node as hbs.AST.SubExpression);
  };

  const readArguments = (params: hbs.AST.Expression[], hash: hbs.AST.Hash | undefined) => {
    params.forEach(read);
    for (const pair of hash?.pairs ?? []) if (!pair.key.startsWith('__')) read(pair.value);
  };

  const checkHelper = (path: hbs.AST.PathExpression, line: number) => {
    if (!HELPERS.has(path.original)) unknownHelpers.push({ name: path.original, line });
  };

  const call = (node: hbs.AST.SubExpression | hbs.AST.MustacheStatement) => {
    const path = node.path as hbs.AST.PathExpression;
    const hasArguments = node.params.length > 0 || (node.hash?.pairs.length ?? 0) > 0;
    if (path.type !== 'PathExpression') return;
    if (hasArguments || node.type === 'SubExpression') {
      checkHelper(path, node.loc.start.line);
      readArguments(node.params, node.hash);
    } else if (!HELPERS.has(path.original)) read(path);
  };

  const scopeOf = (expression: hbs.AST.Expression | undefined, iterates: boolean): string | null => {
    if (!expression) return null;
    if (expression.type === 'SubExpression') {
      const name = ((expression as hbs.AST.SubExpression).path as hbs.AST.PathExpression).original;
      return name === 'recommend' ? RECOMMENDATION_SCOPE : null;
    }
    if (expression.type !== 'PathExpression') return null;
    const path = resolve(expression as hbs.AST.PathExpression);
    return path === null ? null : iterates ? `${path}[]` : path;
  };

  const walk = (program: hbs.AST.Program | undefined): void => {
    for (const statement of program?.body ?? []) {
      if (statement.type === 'MustacheStatement') call(statement as hbs.AST.MustacheStatement);
      else if (statement.type === 'BlockStatement') {
        const block = statement as hbs.AST.BlockStatement;
        const path = block.path as hbs.AST.PathExpression;
        const name = path.original;
        checkHelper(path, block.loc.start.line);
        readArguments(block.params, block.hash);
        const opensScope = name === 'each' || name === 'with';
        const base = opensScope ? scopeOf(block.params[0], name === 'each') : null;
        if (opensScope) {
          const params = new Map<string, string>();
          const inner = base ?? '?';
          const [item, index] = block.program.blockParams ?? [];
          if (item) params.set(item, inner);
          if (index) params.set(index, '');
          scopes.push({ base: inner, params });
          walk(block.program);
          scopes.pop();
        } else walk(block.program);
        walk(block.inverse);
      }
    }
  };
  walk(program);
  // A placeholder scope ('?') means the block iterates something the walk could not name: not a field.
  return { fields: fields.filter((f) => !f.path.startsWith('?') && !f.path.includes('.?')), unknownHelpers };
}

/** Segment's reserved identify traits, which any source may set. */
const RESERVED_TRAITS = [
  'address', 'age', 'avatar', 'birthday', 'company', 'created_at', 'createdAt', 'description', 'email', 'first_name', 'firstName',
  'gender', 'id', 'last_name', 'lastName', 'name', 'phone', 'title', 'username', 'website', 'locale', 'city', 'country', 'currency',
];
/** What the profile view adds (core/profile profileContext, core/behavior behaviorView and the fold). */
const PROFILE_FIELDS = [
  'customer_id', 'email', 'timezone', 'tags', 'last_browsed_category', 'preferred_category', 'category_views', 'behavior_score',
  'opens_30d', 'clicks_30d', 'orders_count', 'total_spent', 'average_order_value', 'days_since_last_order', 'days_since_last_action',
  'cart', 'cart_updated_at', 'cart_abandonment_time', 'visit_days', 'product_views', 'page_views', 'emails_delivered', 'last_order_at',
  'first_order_at', 'last_open_at', 'last_click_at', 'last_action_date', 'email_status', 'behavioral_tags', 'last_viewed_product',
  'last_order_products', 'purchased_product_ids', 'last_delivered_at', 'last_bounce_at', 'groups',
];
/** Fields of a cart item, a viewed or ordered product (core/behavior CartItem). */
const ITEM_FIELDS = ['product_id', 'name', 'price', 'quantity', 'image_url', 'url', 'category'];
/** Fields of a catalog product as recommendation blocks give it (core/catalog). */
const PRODUCT_FIELDS = [...ITEM_FIELDS, 'rating', 'review_count', 'stock', 'related_ids', 'in_stock'];
const ITEM_LISTS = ['cart', 'last_order_products'];

/**
 * Whether some source provides `path`; null if so, else why not. Traits are open (any identify call or import may
 * set one), so a profile field outside the known ones is reported as a question, not an error.
 */
/** What templates read as `brand.*` (core/brand BrandTemplateData). */
const BRAND_FIELDS = ['name', 'postal_address', 'logo', 'colors', 'dark_colors', 'font_family', 'support', 'social'];

export function unprovidedField(path: string, extraTraits: readonly string[] = []): string | null {
  const [root, ...rest] = path.split('.');
  const field = rest[0] ?? '';
  const sub = rest.slice(1);
  switch (root) {
    case 'profile': {
      const name = field.replace(/\[\]$/, '');
      if (rest.length === 0) return null;
      if (ITEM_LISTS.includes(name) || name === 'last_viewed_product') {
        const itemField = sub[0];
        return itemField === undefined || ITEM_FIELDS.includes(itemField) || PRODUCT_FIELDS.includes(itemField) ? null : `${path}: a product in ${name} has ${ITEM_FIELDS.join(', ')}`;
      }
      if (PROFILE_FIELDS.includes(name) || RESERVED_TRAITS.includes(name) || extraTraits.includes(name)) return null;
      return `${path}: no computed field or standard trait has this name; if an identify call or import sets it, declare it under "traits:" in the template header`;
    }
    case 'product[]':
      return field === '' || PRODUCT_FIELDS.includes(field) ? null : `${path}: a recommended product has ${PRODUCT_FIELDS.join(', ')}`;
    case 'consent':
      return field === '' || ['email_marketing', 'behavioral_tracking'].includes(field) ? null : `${path}: consent kinds are email_marketing and behavioral_tracking`;
    case 'event':
      return field === '' || ['name', 'properties', 'timestamp', 'type'].includes(field.replace(/\[\]$/, '')) ? null : `${path}: the trigger event has name, properties and timestamp`;
    case 'flow':
      return field === '' || ['id', 'version', 'step'].includes(field) ? null : `${path}: flow has id, version and step`;
    case 'shop':
      return field === '' || ['url', 'name', 'currency'].includes(field) ? null : `${path}: shop has url, name and currency`;
    case 'brand':
      return field === '' || BRAND_FIELDS.some((known) => field === known || field.startsWith(`${known}.`) || field.startsWith(`${known}[]`))
        ? null
        : `${path}: brand (brand.yaml) has ${BRAND_FIELDS.join(', ')}`;
    case 'data':
      return null;
    default:
      return `${path}: templates read ${['profile', 'consent', 'event', 'data', 'flow', 'shop', 'brand'].join(', ')} (and each item's fields inside {{#each}})`;
  }
}

