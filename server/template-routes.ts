// The template API: GET /api/templates (each template's header and the fields it reads) and
// GET /api/templates/:name/preview?profile=<id> (subject, HTML, text, fallbacks used and fields read, as a send
// would render them for that customer; `format=html` or `format=text` answers with that part alone).
import { Router } from 'express';
import type { CatalogReader } from '../activities/catalog';
import { previewTemplate } from '../activities/preview';
import type { TemplateLibrary } from '../activities/templates';
import type { Store } from '../store/store';
import { BadRequestError, NotFoundError, asyncHandler } from './http-errors';

export interface TemplateRouteDeps {
  templates: TemplateLibrary;
  store: Pick<Store, 'getProfile'>;
  catalog: CatalogReader | null;
  now: () => number;
}

const FORMATS = ['json', 'html', 'text'] as const;

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
      let data: Record<string, unknown> = {};
      if (typeof req.query.data === 'string') {
        try {
          data = JSON.parse(req.query.data) as Record<string, unknown>;
        } catch {
          throw new BadRequestError('data= must be a JSON object, e.g. data={"discount_pct":10}');
        }
      }
      const preview = await previewTemplate(deps, { template: name, customerId, data, at: deps.now() });
      if (format === 'html') res.type('html').send(preview.html);
      else if (format === 'text') res.type('text/plain').send(preview.text);
      else res.json(preview);
    }),
  );

  return router;
}
