import { z } from 'zod';
import type { Scenario } from '../scenario.ts';
import { apiUrl, readErrorEnvelope } from './transport.ts';

export interface ProvisionOptions {
  url: string;
  adminToken: string;
  scenario: Scenario;
  /** Only these sites (default: all of the scenario's). */
  sites?: string[];
}

const CreatedSite = z.looseObject({ site: z.looseObject({ id: z.number() }), token: z.string().min(1) });
const SiteList = z.looseObject({ sites: z.array(z.looseObject({ id: z.number(), name: z.string() })) });
const RotatedToken = z.looseObject({ token: z.string().min(1) });

/** Thrown when the admin API refuses or answers something unexpected. */
export class ProvisionError extends Error {
  override name = 'ProvisionError';
}

async function call(
  url: string,
  adminToken: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: unknown; text: string }> {
  const res = await fetch(apiUrl(url, path), {
    method,
    headers: {
      authorization: `Bearer ${adminToken}`,
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    // left null; callers report the status
  }
  return { status: res.status, json, text };
}

function failure(site: string, step: string, status: number, text: string): ProvisionError {
  const envelope = readErrorEnvelope(text);
  return new ProvisionError(
    `site "${site}": ${step} failed: HTTP ${status}${envelope ? ` ${envelope.code}: ${envelope.message}` : ''}`,
  );
}

/**
 * Creates the scenario's sites through the admin API and returns a token per site name. A site that
 * already exists (409) gets its token rotated instead: tokens are shown only once, so rotating is
 * the only way to get one again.
 */
export async function provisionSites(options: ProvisionOptions): Promise<Record<string, string>> {
  const { url, adminToken, scenario } = options;
  const tokens: Record<string, string> = {};
  let existing: Map<string, number> | null = null;
  for (const site of scenario.sites) {
    if (options.sites && !options.sites.includes(site.name)) continue;
    const created = await call(url, adminToken, 'POST', '/api/v1/sites', {
      name: site.name,
      kind: site.kind,
      capacity_kw: site.capacity_kw,
      ...(site.region !== undefined && { region: site.region }),
      timezone: site.timezone,
    });
    if (created.status === 201 || created.status === 200) {
      const parsed = CreatedSite.safeParse(created.json);
      if (!parsed.success) throw new ProvisionError(`site "${site.name}": create answered without a token`);
      tokens[site.name] = parsed.data.token;
      await applyThresholds(url, adminToken, site, parsed.data.site.id);
      continue;
    }
    if (created.status !== 409) throw failure(site.name, 'create', created.status, created.text);
    if (!existing) {
      const list = await call(url, adminToken, 'GET', '/api/v1/sites');
      const parsed = SiteList.safeParse(list.json);
      if (list.status !== 200 || !parsed.success)
        throw failure(site.name, 'list sites', list.status, list.text);
      existing = new Map(parsed.data.sites.map((s) => [s.name, s.id]));
    }
    const id = existing.get(site.name);
    if (id === undefined)
      throw new ProvisionError(`site "${site.name}": exists (409) but is not in the site list`);
    const rotated = await call(url, adminToken, 'POST', `/api/v1/sites/${id}/token`);
    const parsed = RotatedToken.safeParse(rotated.json);
    if (rotated.status !== 200 || !parsed.success)
      throw failure(site.name, 'rotate token', rotated.status, rotated.text);
    tokens[site.name] = parsed.data.token;
    await applyThresholds(url, adminToken, site, id);
  }
  return tokens;
}

async function applyThresholds(url: string, adminToken: string, site: Scenario['sites'][number], id: number) {
  if (!site.thresholds) return;
  const patched = await call(url, adminToken, 'PATCH', `/api/v1/sites/${id}`, {
    thresholds: site.thresholds,
  });
  if (patched.status !== 200) throw failure(site.name, 'set thresholds', patched.status, patched.text);
}
