// The template API: GET /api/templates (each template's header and the fields it reads) and
// GET /api/templates/:name/preview?profile=<id>[&event=<track call JSON>][&data=<JSON>] (subject, HTML, text, fallbacks
// used and fields read, as a send would render them for that customer and trigger event; `format=html` or
// `format=text` answers with that part alone). The link policy is a send's: no javascript:, data: or off-domain link
// from data is live in a preview either.
import { Router } from 'express';
import type { CatalogReader } from '../activities/catalog';
import { parsePreviewEvent, previewTemplate } from '../activities/preview';
import type { TemplateLibrary } from '../activities/templates';
import type { Store } from '../store/store';
import { BadRequestError, NotFoundError, asyncHandler } from './http-errors';

export interface TemplateRouteDeps {
  templates: TemplateLibrary;
  store: Pick<Store, 'getProfile'>;
  catalog: CatalogReader | null;
  now: () => number;
  /** Where links from data may point, as in sends; default: the template library's (the shop URL's host). */
  linkDomains?: readonly string[];
  /** The signed countdown image URL for a deadline (when the public URL is known); absent: the deadline sentence shows. */
  countdownUrl?: ((untilMs: number) => string) | null;
}

const FORMATS = ['json', 'html', 'text'] as const;

/** A query parameter given at most once, as a string. */
function onceOrAbsent(value: unknown, name: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new BadRequestError('give it once, as a single string', name);
  return value;
}

export function templateRoutes(deps: TemplateRouteDeps): Router {
  const router = Router();

  router.get('/api/templates', (_req, res) => {
    res.json({
      templates: deps.templates.names().map((name) => {
        const template = deps.templates.get(name);
        return { name, file: template.file, ...template.header, fieldsRead: template.fieldsRead };
      }),
    });
  });

  router.get(
    '/api/templates/:name/preview',
    asyncHandler(async (req, res) => {
      const name = req.params.name ?? '';
      if (!deps.templates.has(name)) throw new NotFoundError(`no template "${name}": templates are ${deps.templates.names().join(', ')}`);
      const format = typeof req.query.format === 'string' ? req.query.format : 'json';
      if (!(FORMATS as readonly string[]).includes(format)) throw new BadRequestError(`format=${format}: use json, html or text`);
      const customerId = typeof req.query.profile === 'string' ? req.query.profile : undefined;
      if (customerId === undefined || customerId === '') throw new BadRequestError('say whose data to render with: ?profile=<customer id>');
      const at = deps.now();
      let data: Record<string, unknown> = {};
      const dataJson = onceOrAbsent(req.query.data, 'data');
      if (dataJson !== undefined) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(dataJson);
        } catch {
          parsed = undefined;
        }
        if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new BadRequestError('must be a JSON object, e.g. data={"discount_pct":10}', 'data');
        data = parsed as Record<string, unknown>;
      }
      const eventJson = onceOrAbsent(req.query.event, 'event');
      const event = eventJson === undefined ? undefined : parsePreviewEvent(eventJson, 'event', customerId, at);
      const preview = await previewTemplate(deps, { template: name, customerId, data, event, at });
      if (format === 'html') res.type('html').send(preview.html);
      else if (format === 'text') res.type('text/plain').send(preview.text);
      else res.json(preview);
    }),
  );

  return router;
}
