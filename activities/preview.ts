// Preview: renders a template exactly as a send would (same data, catalog, link policy and fallbacks), for one customer
// of the store, or for a synthetic profile given as data — without tracking tokens, so nothing a reviewer clicks is
// counted.
import { BadInputError, isMicroflowsError, MicroflowsError } from '../core/errors';
import { profileContext, type Profile } from '../core/profile';
import type { CatalogIndex } from '../core/recommendations';
import { EVENT_LIMIT_BYTES, parseTrackCall } from '../core/segment-spec';
import { parseStrictJson } from '../core/strict-json';
import { withUtm } from '../core/tracking';
import { previewOfferCodes } from '../core/offer-codes';
import type { Store } from '../store/store';
import { catalogRenderOptions, type CatalogReader } from './catalog';
import type { RenderedEmail, TemplateLibrary } from './templates';

export interface TemplatePreview extends RenderedEmail {
  template: string;
  /** Whose data: a customer id, or a description of the synthetic profile. */
  subjectOf: string;
  fieldsRead: Array<{ path: string; at: string }>;
}

export interface PreviewDeps {
  templates: TemplateLibrary;
  store: Pick<Store, 'getProfile'>;
  catalog: CatalogReader | null;
  /** Where links from data may point, as in sends (core/link-policy); default: the template library's. */
  linkDomains?: readonly string[];
  /** Signs countdown image URLs as a send would (core/countdown countdownImageUrl); absent: a countdown shows its deadline as text. */
  countdownUrl?: ((untilMs: number) => string) | null;
}

export interface PreviewRequest {
  template: string;
  /** A customer in the store… */
  customerId?: string;
  /** …or a profile given as data (a synthetic member of a segment). */
  profile?: Profile;
  /** The send's data (`data.*`), e.g. { discount_pct: 10 }. */
  data?: Record<string, unknown>;
  /** The trigger event (`event.*`), e.g. from parsePreviewEvent. */
  event?: PreviewEvent;
  /** The moment the preview renders at (time-relative fields such as behavior_score), epoch ms. */
  at: number;
}

/** The trigger event as a send sees it (`event.name`, `event.properties`, `event.timestamp`). */
export interface PreviewEvent {
  name: string | null;
  properties: Record<string, unknown>;
  timestamp?: number;
}

/**
 * The trigger event to preview with, given as a Segment track call in JSON (`{"event": "Order Completed",
 * "properties": {...}}`) and read exactly as ingest reads one: strict JSON, the 32 KB limit, the track call's rules.
 * The call's userId may be left out; given, it must be the customer previewed. `option` names the parameter in errors.
 */
export function parsePreviewEvent(json: string, option: string, customerId: string | undefined, at: number): PreviewEvent {
  const bytes = new TextEncoder().encode(json);
  if (bytes.length > EVENT_LIMIT_BYTES) throw new BadInputError(`${bytes.length} bytes: an event is at most ${EVENT_LIMIT_BYTES} bytes, as in ingest`, option);
  // Ingest's messages name the JSON path ("$.properties.x", "event"); here they also name the parameter.
  const named = (err: unknown) => (isMicroflowsError(err) ? new BadInputError(err.message, option) : err);
  let call: unknown;
  try {
    call = parseStrictJson(bytes, { label: 'the event' });
  } catch (err) {
    throw named(err);
  }
  if (call === null || typeof call !== 'object' || Array.isArray(call)) {
    throw new BadInputError(`give a track call as a JSON object, e.g. '{"event": "Order Completed", "properties": {"order_id": "o-1", "total": 42}}'`, option);
  }
  const body = call as Record<string, unknown>;
  const userId = body.userId ?? body.anonymousId;
  if (customerId !== undefined && userId !== undefined && userId !== null && String(userId) !== customerId) {
    throw new BadInputError(`the event is for "${String(userId)}", the preview for "${customerId}": leave userId out, or make it the same`, `${option} userId`);
  }
  try {
    const event = parseTrackCall({ ...body, userId: customerId ?? userId ?? 'preview' }, at, 'preview');
    return { name: event.name, properties: event.properties, timestamp: event.timestamp };
  } catch (err) {
    throw named(err);
  }
}

/** The customer id is not in the store. */
export class UnknownProfileError extends MicroflowsError {
  override readonly status = 404;
  override readonly code = 'unknown_profile';
  override name = 'UnknownProfileError';
}

export async function previewTemplate(deps: PreviewDeps, request: PreviewRequest): Promise<TemplatePreview> {
  const compiled = deps.templates.get(request.template);
  let profile = request.profile;
  if (!profile && request.customerId !== undefined) {
    profile = await deps.store.getProfile(request.customerId, { withSegments: true });
    if (!profile) throw new UnknownProfileError(`no profile "${request.customerId}" in the store: pass the id of a customer who sent events (GET /api/profiles/:id shows one)`);
  }
  const index: CatalogIndex | null = deps.catalog ? await deps.catalog.index() : null;
  const context = profileContext(profile, request.at);
  const flow = { id: 'preview', version: 0, step: 'preview' };
  const rendered = deps.templates.render(
    request.template,
    { ...context, event: { name: null, properties: {}, ...request.event }, data: request.data ?? {}, flow },
    {
      // The destination a click would reach, with its UTM tags, but no tracking token.
      link: (url) => withUtm(url, { flowId: flow.id, stepId: flow.step }),
      // The same policy as a send: a javascript:, data: or off-domain link from data is shown unlinked here too.
      ...(deps.linkDomains ? { linkDomains: deps.linkDomains } : {}),
      unsubscribeUrl: compiled.header.category === 'marketing' ? '#unsubscribe-preview' : null,
      preferencesUrl: compiled.header.category === 'marketing' ? '#preferences-preview' : null,
      openPixelUrl: null,
      countdownUrl: deps.countdownUrl ?? null,
      now: request.at,
      // No code is claimed for a preview: each pool the template names shows a sample.
      offerCodes: previewOfferCodes(compiled.offerPools, request.data),
      ...catalogRenderOptions(index),
    },
  );
  return { ...rendered, template: request.template, subjectOf: profile ? profile.customerId : 'an empty profile', fieldsRead: compiled.fieldsRead };
}
