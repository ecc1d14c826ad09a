/**
 * GPUs through NVIDIA's dcgm-exporter: the agent scrapes the node's `/metrics` (port 9400) as
 * Prometheus would and maps the DCGM fields with the same table the remote_write receiver uses
 * (src/protocols/remote-write/mapping.ts), so a site moving from Prometheus to the agent keeps
 * its metrics. One reading per `gpu` label; DCGM's "blank" placeholders are left out
 * (finalizeReading), never sent as values.
 */
import type { ExtraMetricName } from '../../../catalog/index.ts';
import { DCGM_FAMILY } from '../../../protocols/remote-write/mapping.ts';
import type { AgentReading, CoreMetrics, ExtraValue } from '../../reading.ts';
import type { Collector, GpuTarget, PollContext, PollResult } from '../collector.ts';
import { PollError } from '../collector.ts';
import { parseExposition } from './prometheus-text.ts';

/** A scrape of one node is a few hundred KiB at most; more is not an exporter. */
const MAX_BODY_BYTES = 8 * 1024 * 1024;

const CORE_NAMES: ReadonlySet<string> = new Set([
  'power_w',
  'temp_c',
  'gpu_util_pct',
  'gpu_mem_used_bytes',
  'fan_rpm',
]);

/** "NVIDIA H100 80GB HBM3" → "H100 80GB HBM3". */
export function gpuModelName(name: string | undefined): string | undefined {
  if (!name) return undefined;
  const model = name.replace(/^NVIDIA\s+/, '').trim();
  return model === '' ? undefined : model.slice(0, 64);
}

/** Readings from a dcgm-exporter page (pure), one per GPU, named `{name}/gpu{gpu}`. */
export function dcgmReadings(
  text: string,
  name: string,
  ts: number,
): { readings: AgentReading[]; unreadable: number } {
  const { samples, unreadable } = parseExposition(text);
  const byGpu = new Map<string, AgentReading>();
  for (const sample of samples) {
    const rules = DCGM_FAMILY.metrics[sample.name];
    const gpu = sample.labels.gpu;
    if (!rules || gpu === undefined || !/^\d+$/.test(gpu)) continue;
    let reading = byGpu.get(gpu);
    if (!reading) {
      reading = { device: `${name}/gpu${gpu}`, kind: 'gpu', ts, status: 'ok' };
      const model = gpuModelName(sample.labels.modelName);
      if (model) reading.model = model;
      byGpu.set(gpu, reading);
    }
    for (const rule of rules) {
      let value = sample.value;
      if (rule.scale !== undefined) value *= rule.scale;
      if (rule.divideBy !== undefined) value /= rule.divideBy;
      if (CORE_NAMES.has(rule.metric)) {
        (reading as CoreMetrics)[rule.metric as keyof CoreMetrics] = value;
        continue;
      }
      reading.extras ??= {};
      const extras: Partial<Record<ExtraMetricName, ExtraValue>> = reading.extras;
      const metric = rule.metric as ExtraMetricName;
      if (rule.index !== undefined) {
        const current = extras[metric];
        extras[metric] = { ...(typeof current === 'object' ? current : {}), [rule.index]: value };
      } else extras[metric] = value;
    }
  }
  return { readings: [...byGpu.values()], unreadable };
}

export class DcgmCollector implements Collector<GpuTarget> {
  async poll(target: GpuTarget, context: PollContext): Promise<PollResult> {
    if (!target.url) throw new PollError('unreachable', 'no exporter URL configured');
    let response: Response;
    try {
      response = await fetch(target.url, { signal: AbortSignal.timeout(context.timeoutMs) });
    } catch (error) {
      const e = error as Error & { cause?: { code?: string } };
      if (e.name === 'TimeoutError')
        throw new PollError('timeout', `no answer within ${context.timeoutMs} ms`);
      const code = e.cause?.code;
      throw new PollError(
        code === 'ECONNREFUSED' ? 'refused' : code === 'ECONNRESET' ? 'reset' : 'unreachable',
        `${code ?? e.message}`,
      );
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new PollError('http_status', `HTTP ${response.status}`);
    }
    const length = Number(response.headers.get('content-length') ?? 0);
    if (length > MAX_BODY_BYTES) {
      await response.body?.cancel();
      throw new PollError('too_large', `${length} bytes`);
    }
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      throw new PollError('reset', (error as Error).message);
    }
    const { readings, unreadable } = dcgmReadings(text, target.name, context.ts);
    if (readings.length === 0) throw new PollError('malformed', 'no DCGM GPU series on the page');
    return {
      readings,
      problems: unreadable > 0 ? [`${unreadable} unreadable line(s)`] : [],
      repairs: [],
    };
  }
}
