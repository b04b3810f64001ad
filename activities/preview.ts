// Preview: renders a template exactly as a send would (same data, catalog and fallbacks), for one customer of the
// store, or for a synthetic profile given as data — without tracking tokens, so nothing a reviewer clicks is counted.
import { profileContext, type Profile } from '../core/profile';
import type { CatalogIndex } from '../core/recommendations';
import { withUtm } from '../core/tracking';
import { MicroflowsError } from '../core/errors';
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
}

export interface PreviewRequest {
  template: string;
  /** A customer in the store… */
  customerId?: string;
  /** …or a profile given as data (a synthetic member of a segment). */
  profile?: Profile;
  /** The send's data (`data.*`), e.g. { discount_pct: 10 }. */
  data?: Record<string, unknown>;
  /** The trigger event (`event.*`). */
  event?: { name: string | null; properties: Record<string, unknown> };
  /** The moment the preview renders at (time-relative fields such as behavior_score), epoch ms. */
  at: number;
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
    { ...context, event: request.event ?? { name: null, properties: {} }, data: request.data ?? {}, flow },
    {
      // The destination a click would reach, with its UTM tags, but no tracking token.
      link: (url) => withUtm(url, { flowId: flow.id, stepId: flow.step }),
      unsubscribeUrl: compiled.header.category === 'marketing' ? '#unsubscribe-preview' : null,
      openPixelUrl: null,
      ...catalogRenderOptions(index),
    },
  );
  return { ...rendered, template: request.template, subjectOf: profile ? profile.customerId : 'an empty profile', fieldsRead: compiled.fieldsRead };
}
