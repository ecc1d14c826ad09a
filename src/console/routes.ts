/**
 * The web console, served by the service itself: `GET /` is the page, `/console/assets/…` its
 * scripts and styles (from ./browser, and uPlot from its npm package, never from a CDN), and
 * `GET /console/session` tells the page which token it holds. Everything else the page shows it
 * reads from the public read and alerts APIs with the operator's own token.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Hono } from 'hono';
import { z } from 'zod';
import { HashwattError } from '../errors.ts';
import { parseQuery } from '../http/validate.ts';
import { type ReaderAuthDeps, readerAuthenticator } from '../read/reader.ts';
import { sessionOf } from './session.ts';

const BROWSER_DIR = path.join(import.meta.dirname, 'browser');
const UPLOT_DIST = path.join(
  path.dirname(createRequire(import.meta.url).resolve('uplot/package.json')),
  'dist',
);

const CONTENT_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/**
 * The page loads nothing but its own files and talks to nobody but this service. The token sits in
 * sessionStorage, so injected script is what would steal it: no inline script or style, no other
 * origin, no framing, and no form that could post anywhere.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Served as `/console/assets/NAME`: the browser sources by file name, uPlot by its own. */
function assetFiles(): Map<string, string> {
  const files = new Map<string, string>();
  for (const name of readdirSync(BROWSER_DIR)) {
    // `.d.ts` shims and the tsconfig are for the type checker, not the browser.
    if (path.extname(name) in CONTENT_TYPES) files.set(name, path.join(BROWSER_DIR, name));
  }
  files.set('uPlot.esm.js', path.join(UPLOT_DIST, 'uPlot.esm.js'));
  files.set('uPlot.min.css', path.join(UPLOT_DIST, 'uPlot.min.css'));
  return files;
}

interface LoadedFile {
  body: Uint8Array;
  etag: string;
}

/** Reads a file once, on first request: most processes never serve the console. */
function lazyFile(file: string): () => LoadedFile {
  let loaded: LoadedFile | undefined;
  return () => {
    if (!loaded) {
      const body = new Uint8Array(readFileSync(file));
      loaded = { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
    }
    return loaded;
  };
}

const NoQuery = z.strictObject({});

/** `GET /`, `GET /console/assets/:file` and `GET /console/session`. Mount at `/`. */
export function consoleRoutes(deps: ReaderAuthDeps) {
  const readerOf = readerAuthenticator(deps);
  const page = lazyFile(path.join(BROWSER_DIR, 'index.html'));
  const assets = new Map(
    [...assetFiles()].map(([name, file]) => [
      name,
      { type: CONTENT_TYPES[path.extname(name)]!, load: lazyFile(file) },
    ]),
  );

  /**
   * Revalidated on every load (`no-cache` with an ETag): the modules import each other by plain
   * names, so an upgraded service must never mix a cached old module with a new one.
   */
  const serve = (ifNoneMatch: string | undefined, file: LoadedFile, headers: Record<string, string>) => {
    const common = { etag: file.etag, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' };
    if (ifNoneMatch === file.etag) return new Response(null, { status: 304, headers: common });
    return new Response(file.body, { status: 200, headers: { ...common, ...headers } });
  };

  return new Hono()
    .get('/', (c) =>
      serve(c.req.header('if-none-match'), page(), {
        'content-type': 'text/html; charset=utf-8',
        'content-security-policy': CONTENT_SECURITY_POLICY,
        'referrer-policy': 'no-referrer',
        'x-frame-options': 'DENY',
      }),
    )
    .get('/console/assets/:file', (c) => {
      const asset = assets.get(c.req.param('file'));
      if (!asset) throw new HashwattError('not_found', 'no such console asset');
      return serve(c.req.header('if-none-match'), asset.load(), { 'content-type': asset.type });
    })
    .get('/console/session', async (c) => {
      const reader = await readerOf(c);
      parseQuery(NoQuery, c.req.query());
      c.header('cache-control', 'no-store');
      return c.json(sessionOf(reader));
    });
}
