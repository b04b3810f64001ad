// `npm run gallery`: photographs every template in templates/ as sample customers get it, for the README's "What the
// emails look like". Serves the real app on a temporary SQLite store, loads catalog/products.json through
// PUT /api/catalog/products and the customers' histories through POST /v1/batch, opens each template's preview
// (GET /api/templates/:name/preview) in headless Chromium at 600 and 375 px, and saves full-page JPEGs to
// docs/gallery/ and the table of them to README.md. The shop's images, which do not exist offline, are answered with
// placeholders in the brand's colours; any other request off the app is aborted.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import type http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { BrowserContext, Route } from 'playwright-core';
import { catalogReader } from '../activities/catalog';
import { TemplateLibrary } from '../activities/templates';
import { KEY_PREFIX } from '../core/api-keys';
import { parseCatalogJson, type Product } from '../core/catalog';
import { readConfig } from '../core/config';
import { formatProblem, isMicroflowsError } from '../core/errors';
import { loadBrandFile, requireBrandForMarketing } from '../cli/brand-file';
import { loadFlowFiles } from '../cli/project-files';
import { segmentIdsIn } from '../cli/segment-files';
import { listenOn } from '../cli/runtime';
import { createApp } from '../server/app';
import { noDispatch } from '../server/dispatcher';
import { openStore } from '../store/open-store';
import type { Store } from '../store/store';
import { launchChromium } from './chromium';
import { familyOf, sampleCustomers, TEMPLATE_FAMILIES, type SampleCustomer } from './gallery-customers';
import {
  GALLERY_DIR,
  gallerySection,
  imagePath,
  logoPlaceholder,
  placeholderSvg,
  productPlaceholder,
  replaceGallerySection,
  VIEWPORTS,
  type GalleryEntry,
  type Placeholder,
} from './gallery-markup';

/** A failure the gallery explains: printed as its message alone, and the script exits 1. */
class GalleryError extends Error {
  override name = 'GalleryError';
}

const ROOT = path.resolve(__dirname, '..');
/** Short: a full-page screenshot is as tall as the page or the viewport, whichever is taller; the email decides. */
const VIEWPORT_HEIGHT = 320;
const JPEG_QUALITY = 80;

function shown(file: string): string {
  return path.relative(ROOT, file) || file;
}

/** The API's error answer (`{ error, message, field }`) as one line, or the answer's text. */
async function failureOf(response: Response): Promise<string> {
  const text = await response.text();
  try {
    const body = JSON.parse(text) as { error?: string; message?: string; field?: string };
    if (body.message) return `${body.message}${body.field ? ` (${body.field})` : ''}`;
  } catch {
    // not JSON: the text says it
  }
  return text.slice(0, 500);
}

/** Runs `step`, turning its failure into a GalleryError that keeps the message (the pure modules explain theirs). */
async function explained<T>(step: () => T | Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    throw new GalleryError(err instanceof Error ? err.message : String(err));
  }
}

/** `send` data of the first step that sends `template` in the project's flows (e.g. winback-offer's discount_pct), or {}. */
function sendDataOf(template: string, flows: ReturnType<typeof loadFlowFiles>['flows']): Record<string, unknown> {
  for (const flow of flows) {
    for (const node of Object.values(flow.nodes)) if (node.kind === 'send' && node.template === template) return node.data;
  }
  return {};
}

/**
 * Answers requests for the shop's images with placeholders: `images` maps a URL to its stand-in, and any other image on
 * the shop's host (or a subdomain) gets the brand's. Requests to `appUrl` go through; every other one is aborted and
 * noted in `aborted`.
 */
function routeRequests(options: { appUrl: string; shopHost: string; images: ReadonlyMap<string, Placeholder>; fallback: Placeholder; svg: (p: Placeholder) => string; aborted: Set<string> }) {
  return async (route: Route) => {
    const request = route.request();
    const url = new URL(request.url());
    if (url.origin === options.appUrl) return route.continue();
    const onShop = url.hostname === options.shopHost || url.hostname.endsWith(`.${options.shopHost}`);
    const known = options.images.get(url.href);
    if (known || (onShop && request.resourceType() === 'image')) {
      return route.fulfill({ status: 200, contentType: 'image/svg+xml', body: options.svg(known ?? options.fallback) });
    }
    options.aborted.add(`${url.origin}${url.pathname}`);
    return route.abort('blockedbyclient');
  };
}

async function run(): Promise<void> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'microflows-gallery-'));
  // The project's own files (templates/, brand.yaml, catalog/, flows/), and a store of its own in the temp directory.
  const config = readConfig({ MICROFLOWS_DATA_DIR: dataDir, HOST: '127.0.0.1', PORT: '0' }, ROOT);
  const adminKey = `${KEY_PREFIX.admin}${randomBytes(24).toString('base64url')}`;
  const log = (message: string) => console.error(`[app] ${message}`);
  let store: Store | null = null;
  let server: http.Server | null = null;
  let contexts: BrowserContext[] = [];
  let closeBrowser: (() => Promise<void>) | null = null;
  const readmeFile = path.join(ROOT, 'README.md');
  try {
    // Missing markers are found before the screenshots, not after.
    await explained(() => replaceGallerySection(fs.readFileSync(readmeFile, 'utf8'), ''));
    // Built as `microflows start` builds it (cli/runtime.ts), without Temporal: events are stored but start no flow.
    store = openStore(config);
    await store.migrate();
    const brand = loadBrandFile(config.brandFile);
    const templates = new TemplateLibrary(config.templatesDir, { shopUrl: config.shopUrl, linkDomains: config.linkDomains, log, brand });
    requireBrandForMarketing(config.brandFile, brand, templates.marketingNames());
    if (!brand) throw new GalleryError(`no brand file at ${shown(config.brandFile)}: the gallery shows the brand's emails`);
    const app = createApp({
      store,
      config: { ...config, signingSecret: randomBytes(32).toString('hex'), adminKey },
      dispatcher: noDispatch,
      templates,
      catalog: catalogReader(store),
      brand,
      log,
    });
    server = await listenOn(app, 0, config.host, config.http);
    const appUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const admin = { authorization: `Bearer ${adminKey}` };

    // The catalog through the real API, as a shop would send it.
    const catalogFile = path.join(config.catalogDir, 'products.json');
    const catalogText = fs.readFileSync(catalogFile, 'utf8');
    const catalog: Product[] = parseCatalogJson(catalogText, shown(catalogFile));
    const put = await fetch(`${appUrl}/api/catalog/products`, { method: 'PUT', headers: { ...admin, 'content-type': 'application/json' }, body: catalogText });
    if (put.status !== 200) throw new GalleryError(`PUT /api/catalog/products with ${shown(catalogFile)} answered ${put.status}: ${await failureOf(put)}`);

    // The sample customers' histories through the Segment API.
    const customers = await explained(() => sampleCustomers(catalog, Date.now()));
    const batch = await fetch(`${appUrl}/v1/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Basic ${Buffer.from(`${config.writeKey}:`).toString('base64')}` },
      body: JSON.stringify({ batch: customers.flatMap((c) => c.calls) }),
    });
    if (batch.status !== 200) throw new GalleryError(`POST /v1/batch with the sample customers answered ${batch.status}: ${await failureOf(batch)}`);

    const names = fs
      .readdirSync(config.templatesDir)
      .filter((f) => f.endsWith('.mjml'))
      .map((f) => f.slice(0, -'.mjml'.length))
      .sort((a, b) => TEMPLATE_FAMILIES.indexOf(familyOf(a)) - TEMPLATE_FAMILIES.indexOf(familyOf(b)) || a.localeCompare(b));
    if (names.length === 0) throw new GalleryError(`no templates (*.mjml) in ${shown(config.templatesDir)}`);
    const { flows, problems } = loadFlowFiles(config.flowsDir, config.templatesDir, segmentIdsIn(config.segmentsDir));
    for (const problem of problems.filter((p) => p.severity === 'error')) console.error(`[flows] ${formatProblem(problem)} (the gallery renders without that flow's send data)`);

    // Placeholders for the shop's images: products by their catalog picture, the logo by brand.yaml's.
    const images = new Map<string, Placeholder>();
    for (const product of catalog) if (product.image_url) images.set(new URL(product.image_url).href, productPlaceholder(product.name));
    if (brand.logo) images.set(new URL(brand.logo.url).href, logoPlaceholder(brand.name, brand.logo.width));
    const shopHost = new URL(config.shopUrl).hostname;
    const aborted = new Set<string>();

    const browser = await explained(launchChromium);
    closeBrowser = () => browser.close();
    contexts = await Promise.all(
      VIEWPORTS.map(async (viewport) => {
        const context = await browser.newContext({
          viewport: { width: viewport.width, height: VIEWPORT_HEIGHT },
          colorScheme: 'light',
          deviceScaleFactor: 1,
          isMobile: viewport.name === 'phone',
          extraHTTPHeaders: admin,
        });
        await context.route(
          '**/*',
          routeRequests({ appUrl, shopHost, images, fallback: productPlaceholder(brand.name), svg: (p) => placeholderSvg(p, brand.colors, brand.fontFamily), aborted }),
        );
        return context;
      }),
    );
    const pages = await Promise.all(contexts.map((context) => context.newPage()));

    fs.mkdirSync(path.join(ROOT, GALLERY_DIR), { recursive: true });
    const entries: GalleryEntry[] = [];
    const written = new Set<string>();
    for (const template of names) {
      const customer: SampleCustomer = customers.find((c) => c.family === familyOf(template))!;
      const query = new URLSearchParams({ profile: customer.customerId });
      const data = sendDataOf(template, flows);
      if (Object.keys(data).length > 0) query.set('data', JSON.stringify(data));
      if (customer.trigger) query.set('event', JSON.stringify(customer.trigger));
      const previewUrl = `${appUrl}/api/templates/${encodeURIComponent(template)}/preview?${query}`;

      const json = await fetch(previewUrl, { headers: admin });
      if (json.status !== 200) throw new GalleryError(`the preview of ${template} for ${customer.customerId} answered ${json.status}: ${await failureOf(json)}`);
      const preview = (await json.json()) as { subject: string; fallbacks: Array<{ at: string; expression: string }> };

      for (const [i, viewport] of VIEWPORTS.entries()) {
        const page = pages[i]!;
        const response = await page.goto(`${previewUrl}&format=html`, { waitUntil: 'load' });
        if (!response || response.status() !== 200) {
          throw new GalleryError(`the HTML preview of ${template} answered ${response?.status() ?? 'nothing'} in Chromium: ${response ? (await response.text()).slice(0, 500) : ''}`);
        }
        const file = path.join(ROOT, imagePath(template, viewport.name));
        const jpeg = await page.screenshot({ path: file, fullPage: true, type: 'jpeg', quality: JPEG_QUALITY });
        const height = await page.evaluate<number>('document.documentElement.scrollHeight');
        written.add(file);
        console.log(`wrote ${shown(file)}  (${viewport.width}×${height} px, ${Math.round(jpeg.length / 1024)} KB)`);
      }
      const fallbacks = preview.fallbacks.length === 0 ? '' : `; ${preview.fallbacks.length} fallback(s): ${preview.fallbacks.map((f) => `${f.at} {{${f.expression}}}`).join(', ')}`;
      console.log(`  ${template}: "${preview.subject}" for ${customer.customerId}${fallbacks}`);
      entries.push({ template, subject: preview.subject, customer: customer.description });
    }

    // Pictures of templates that no longer exist would linger in the repository: removed.
    for (const file of fs.readdirSync(path.join(ROOT, GALLERY_DIR))) {
      const full = path.join(ROOT, GALLERY_DIR, file);
      if (/-(desktop|phone)\.jpg$/.test(file) && !written.has(full)) {
        fs.rmSync(full);
        console.log(`removed ${shown(full)} (no such template any more)`);
      }
    }

    const readme = await explained(() => replaceGallerySection(fs.readFileSync(readmeFile, 'utf8'), gallerySection(entries)));
    fs.writeFileSync(readmeFile, readme);
    console.log(`wrote the gallery section of README.md (${entries.length} templates)`);
    if (aborted.size > 0) console.log(`aborted ${aborted.size} request(s) off the app and the shop's images: ${[...aborted].sort().join(', ')}`);
  } finally {
    for (const context of contexts) await context.close().catch(() => undefined);
    await closeBrowser?.().catch(() => undefined);
    if (server) {
      const closing = server;
      await new Promise<void>((resolve) => {
        closing.close(() => resolve());
        closing.closeAllConnections();
      });
    }
    await store?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

run().then(
  () => process.exit(0),
  (err: unknown) => {
    // Errors a user can fix print as their message alone (file:line for bad files); anything else with its stack.
    const known = err instanceof GalleryError || isMicroflowsError(err);
    console.error(`gallery: ${known ? (err as Error).message : err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
