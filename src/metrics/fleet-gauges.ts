import { Gauge, type Registry } from 'prom-client';
import { DEVICE_STATES, type FleetReader, type SiteState } from '../fleet/index.ts';

const SITE_LABELS = ['site', 'kind'] as const;
type SiteLabels = Record<(typeof SITE_LABELS)[number], string>;
type Sample<L extends string> = [labels: Record<L, string>, value: number];

const TH = 1e12;

/**
 * The sites of the current snapshot; when a refresh fails (database down), the last good one, whose
 * age `hashwatt_fleet_snapshot_age_seconds` shows, rather than failing the whole scrape.
 */
async function currentSites(fleet: FleetReader): Promise<SiteState[]> {
  try {
    return (await fleet.read()).sites;
  } catch {
    return fleet.latest?.sites ?? [];
  }
}

/**
 * A gauge whose samples are derived from the fleet snapshot at scrape time: every replica reports
 * the same values from the same database, and a deleted site disappears with the next scrape.
 */
function fleetGauge<L extends string>(
  registry: Registry,
  fleet: FleetReader,
  name: string,
  help: string,
  labelNames: readonly L[],
  samples: (site: SiteState, labels: SiteLabels) => Sample<L>[] | number | null,
): void {
  new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    async collect() {
      const sites = await currentSites(fleet);
      this.reset();
      for (const site of sites) {
        const labels: SiteLabels = { site: site.name, kind: site.kind };
        const out = samples(site, labels);
        if (out === null) continue;
        if (typeof out === 'number') this.set(labels as Record<L, string>, out);
        else for (const [l, v] of out) this.set(l, v);
      }
    },
  });
}

/** Registers the per-site fleet gauges (no per-device series: a 1 GW fleet is ~300 000 ASICs). */
export function registerFleetGauges(registry: Registry, fleet: FleetReader): void {
  new Gauge({
    name: 'hashwatt_fleet_snapshot_age_seconds',
    help: 'Age of the fleet snapshot the fleet gauges come from.',
    registers: [registry],
    async collect() {
      await currentSites(fleet);
      const latest = fleet.latest;
      if (latest) this.set((Date.now() - latest.takenAtMs) / 1000);
    },
  });
  new Gauge({
    name: 'hashwatt_fleet_snapshot_duration_seconds',
    help: 'How long the last fleet aggregate over the latest-state table took.',
    registers: [registry],
    collect() {
      const latest = fleet.latest;
      if (latest) this.set(latest.durationMs / 1000);
    },
  });

  const g = (name: string, help: string, value: (s: SiteState) => number | null) =>
    fleetGauge(registry, fleet, name, help, SITE_LABELS, value);

  g(
    'hashwatt_site_power_drawn_watts',
    'Power the site draws: its meter when fresh, else the sum of its devices.',
    (s) => s.drawnW,
  );
  fleetGauge(
    registry,
    fleet,
    'hashwatt_site_power_drawn_source',
    '1 for the source hashwatt_site_power_drawn_watts comes from (meter or devices), 0 for the other.',
    [...SITE_LABELS, 'source'],
    (s, l) => [
      [{ ...l, source: 'meter' }, s.drawnSource === 'meter' ? 1 : 0],
      [{ ...l, source: 'devices' }, s.drawnSource === 'devices' ? 1 : 0],
    ],
  );
  g('hashwatt_site_power_capacity_watts', 'Contracted power capacity of the site.', (s) => s.capacityW);
  g(
    'hashwatt_site_power_available_watts',
    'Power the site may draw now: its meter’s available power when fresh, else its capacity.',
    (s) => s.availableW,
  );
  g(
    'hashwatt_site_power_surplus_watts',
    'Available minus drawn power; negative when over.',
    (s) => s.surplusW,
  );
  g('hashwatt_site_power_surplus_ratio', 'Surplus as a share of available power.', (s) => s.surplusRatio);
  g(
    'hashwatt_site_hashrate_hashes_per_second',
    'Hashrate of the site’s hashing ASICs.',
    (s) => s.hashrateThs * TH,
  );
  g(
    'hashwatt_site_expected_hashrate_hashes_per_second',
    'Nameplate hashrate of the ASICs expected to hash (curtailed excused).',
    (s) => s.expectedHashrateThs * TH,
  );
  g('hashwatt_site_hashing_ratio', 'Actual over expected hashrate.', (s) => s.hashingRatio);
  g(
    'hashwatt_site_efficiency_joules_per_terahash',
    'Power of hashing ASICs per TH/s.',
    (s) => s.efficiencyJPerTh,
  );
  g(
    'hashwatt_site_gpu_utilisation_ratio',
    'Mean utilisation of the site’s reporting GPUs.',
    (s) => s.gpus.utilisationRatio,
  );
  fleetGauge(
    registry,
    fleet,
    'hashwatt_site_gpus',
    'Reporting GPUs by busy or idle.',
    [...SITE_LABELS, 'state'],
    (s, l) => [
      [{ ...l, state: 'busy' }, s.gpus.busy],
      [{ ...l, state: 'idle' }, s.gpus.idle],
    ],
  );
  fleetGauge(
    registry,
    fleet,
    'hashwatt_site_devices',
    'Compute devices (ASIC, GPU, other) by state; curtailed devices are excused, not down.',
    [...SITE_LABELS, 'state'],
    (s, l) =>
      DEVICE_STATES.map((state) => [{ ...l, state }, s.devices[state]] as Sample<'site' | 'kind' | 'state'>),
  );
  g(
    'hashwatt_site_devices_down_ratio',
    'Down and stale devices as a share of all compute devices.',
    (s) => s.devicesDownRatio,
  );
  g('hashwatt_site_up', '1 when the site reported within site_down_after_s.', (s) => (s.up ? 1 : 0));
  g(
    'hashwatt_site_last_reading_timestamp_seconds',
    'When hashwatt last received a reading from the site.',
    (s) => (s.lastReadingMs === null ? 0 : s.lastReadingMs / 1000),
  );
  fleetGauge(
    registry,
    fleet,
    'hashwatt_site_workload_power_watts',
    'Power of GPUs (ai) and ASICs (mining).',
    [...SITE_LABELS, 'workload'],
    (s, l) => [
      [{ ...l, workload: 'ai' }, s.aiPowerW],
      [{ ...l, workload: 'mining' }, s.miningPowerW],
    ],
  );
  g('hashwatt_site_ai_power_ratio', 'Share of AI in AI plus mining power.', (s) => s.aiShareRatio);
  g(
    'hashwatt_site_down_after_seconds',
    'The site’s site_down_after_s threshold, for alert rules.',
    (s) => s.thresholds.site_down_after_s,
  );
}
