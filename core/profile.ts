// Folds events into a customer profile (traits, consent, computed fields) and builds the context
// conditions read. Pure: the store calls it inside the event's transaction.

import type { EventType } from './event';
export interface ConsentRecord {
  granted: boolean;
  source: string;
  /** epoch ms */
  at: number;
}

export interface CartItem {
  product_id: string;
  name?: string;
  price?: number;
  quantity: number;
  image_url?: string;
  url?: string;
  category?: string;
}

export interface Profile {
  customerId: string;
  email: string | null;
  timezone: string | null;
  traits: Record<string, unknown>;
  /** Fields computed from events: last_action_date, last_browsed_category, cart, orders_count, ... */
  computed: Record<string, unknown>;
  consent: Record<string, ConsentRecord>;
  tags: string[];
  /** epoch ms */
  updatedAt: number;
}

/** The part of an ingested event the profile fold needs. */
export interface ProfileEvent {
  type: EventType;
  name: string | null;
  properties: Record<string, unknown>;
  traits: Record<string, unknown>;
  /** epoch ms, the event's own (corrected) time */
  timestamp: number;
}

export function emptyProfile(customerId: string, now: number): Profile {
  return { customerId, email: null, timezone: null, traits: {}, computed: {}, consent: {}, tags: [], updatedAt: now };
}

const CONSENT_KINDS = ['email_marketing', 'behavioral_tracking'];

function asString(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : typeof value === 'number' ? String(value) : undefined;
}

function asNumber(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

function cartItemFrom(properties: Record<string, unknown>): CartItem | undefined {
  const productId = asString(properties.product_id) ?? asString(properties.sku);
  if (!productId) return undefined;
  return {
    product_id: productId,
    name: asString(properties.name),
    price: asNumber(properties.price),
    quantity: asNumber(properties.quantity) ?? 1,
    image_url: asString(properties.image_url),
    url: asString(properties.url),
    category: asString(properties.category),
  };
}

function applyIdentify(profile: Profile, event: ProfileEvent): void {
  const { consent, ...traits } = event.traits;
  Object.assign(profile.traits, traits);
  const email = asString(traits.email);
  if (email) profile.email = email;
  const timezone = asString(traits.timezone);
  if (timezone) profile.timezone = timezone;
  if (consent && typeof consent === 'object') {
    for (const kind of CONSENT_KINDS) {
      const granted = (consent as Record<string, unknown>)[kind];
      if (typeof granted === 'boolean') profile.consent[kind] = { granted, source: 'identify', at: event.timestamp };
    }
  }
}

function applyTrack(profile: Profile, event: ProfileEvent): void {
  const c = profile.computed;
  const props = event.properties;
  switch (event.name) {
    case 'Product Viewed': {
      const category = asString(props.category);
      if (category) c.last_browsed_category = category;
      const product = cartItemFrom(props);
      if (product) c.last_viewed_product = product;
      break;
    }
    case 'Product Added': {
      const item = cartItemFrom(props);
      if (!item) break;
      const cart = ((c.cart as CartItem[] | undefined) ?? []).filter((i) => i.product_id !== item.product_id);
      const previous = ((c.cart as CartItem[] | undefined) ?? []).find((i) => i.product_id === item.product_id);
      cart.push({ ...item, quantity: (previous?.quantity ?? 0) + item.quantity });
      c.cart = cart;
      c.cart_updated_at = event.timestamp;
      break;
    }
    case 'Product Removed': {
      const productId = asString(props.product_id) ?? asString(props.sku);
      c.cart = ((c.cart as CartItem[] | undefined) ?? []).filter((i) => i.product_id !== productId);
      c.cart_updated_at = event.timestamp;
      break;
    }
    case 'Order Completed': {
      c.cart = [];
      c.last_order_at = event.timestamp;
      c.orders_count = (asNumber(c.orders_count) ?? 0) + 1;
      c.total_spent = (asNumber(c.total_spent) ?? 0) + (asNumber(props.total) ?? asNumber(props.revenue) ?? 0);
      const products = Array.isArray(props.products) ? props.products : [];
      c.last_order_products = products
        .map((p) => (p && typeof p === 'object' ? cartItemFrom(p as Record<string, unknown>) : undefined))
        .filter((p): p is CartItem => p !== undefined);
      break;
    }
    case 'Unsubscribed':
      profile.consent.email_marketing = { granted: false, source: 'unsubscribe', at: event.timestamp };
      break;
    default:
      break;
  }
}

/** Returns a new profile with the event applied; the input is not modified. */
export function applyEventToProfile(profile: Profile, event: ProfileEvent, now: number): Profile {
  const next: Profile = structuredClone(profile);
  if (event.type === 'identify') applyIdentify(next, event);
  else applyTrack(next, event);
  const last = asNumber(next.computed.last_action_date);
  if (event.type === 'track' && (last === undefined || event.timestamp > last)) next.computed.last_action_date = event.timestamp;
  next.updatedAt = now;
  return next;
}

/** Applies an `update_profile` step: set fields (into traits), add and remove tags. */
export function applyProfileUpdate(
  profile: Profile,
  update: { set: Record<string, unknown>; addTags: string[]; removeTags: string[] },
  now: number,
): Profile {
  const next: Profile = structuredClone(profile);
  Object.assign(next.traits, update.set);
  const tags = new Set(next.tags);
  update.addTags.forEach((t) => tags.add(t));
  update.removeTags.forEach((t) => tags.delete(t));
  next.tags = [...tags].sort();
  next.updatedAt = now;
  return next;
}

/** The `profile.*` and `consent.*` view that conditions and templates read. */
export function profileContext(profile: Profile | undefined): { profile: Record<string, unknown>; consent: Record<string, boolean> } {
  if (!profile) return { profile: {}, consent: {} };
  const consent: Record<string, boolean> = {};
  for (const [kind, record] of Object.entries(profile.consent)) consent[kind] = record.granted;
  return {
    profile: {
      ...profile.traits,
      ...profile.computed,
      customer_id: profile.customerId,
      email: profile.email,
      timezone: profile.timezone,
      tags: profile.tags,
    },
    consent,
  };
}
