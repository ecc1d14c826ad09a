import { Gauge, type Registry } from 'prom-client';
import { classifyDevice, DEVICE_STATES, type Thresholds } from '../fleet/index.ts';
import type { Storage } from '../storage/database.ts';
import { type DeviceLatestView, listDevicesOfSmallSites } from '../storage/fleet.ts';

const LABELS = ['site', 'device', 'kind'] as const;
type Labels = Record<(typeof LABELS)[number], string>;

/**
 * Opt-in per-device series, only for sites with at most `maxDevicesPerSite` devices: a 1 GW fleet is
 * ~300 000 ASICs, which would drown Prometheus, but a 40-GPU pilot hall is worth seeing device by device.
 */
export function registerDeviceGauges(
  registry: Registry,
  storage: Storage,
  defaults: Thresholds,
  maxDevicesPerSite: number,
): void {
  // One query per scrape, shared by the gauges below (collect() is called once per gauge).
  let pending: Promise<DeviceLatestView[]> | undefined;
  const devices = () => {
    pending ??= listDevicesOfSmallSites(storage.db, maxDevicesPerSite).finally(() => {
      setTimeout(() => {
        pending = undefined;
      }, 500).unref();
    });
    return pending;
  };
  const gauge = (name: string, help: string, value: (d: DeviceLatestView) => number | null) =>
    new Gauge({
      name,
      help,
      labelNames: LABELS,
      registers: [registry],
      async collect() {
        this.reset();
        for (const d of await devices().catch(() => [])) {
          const v = value(d);
          if (v !== null) this.set({ site: d.site, device: d.device, kind: d.kind } satisfies Labels, v);
        }
      },
    });
  gauge('hashwatt_device_power_watts', 'Power of one device (small sites only).', (d) => d.power_w);
  gauge('hashwatt_device_hashrate_hashes_per_second', 'Hashrate of one ASIC (small sites only).', (d) =>
    d.hashrate_ths === null ? null : d.hashrate_ths * 1e12,
  );
  gauge('hashwatt_device_gpu_utilisation_ratio', 'Utilisation of one GPU (small sites only).', (d) =>
    d.gpu_util_pct === null ? null : d.gpu_util_pct / 100,
  );
  gauge(
    'hashwatt_device_temperature_celsius',
    'Temperature of one device (small sites only).',
    (d) => d.temp_c,
  );
  gauge(
    'hashwatt_device_last_reading_timestamp_seconds',
    'When one device last reported (small sites only).',
    (d) => d.received_at.getTime() / 1000,
  );
  new Gauge({
    name: 'hashwatt_device_state',
    help: '1 for the state a device is in (up, down, stale, curtailed), small sites only.',
    labelNames: [...LABELS, 'state'],
    registers: [registry],
    async collect() {
      this.reset();
      const now = Date.now();
      for (const d of await devices().catch(() => [])) {
        // Per-site staleness overrides are not applied here; the site-level gauges honour them.
        const state = classifyDevice(
          {
            kind: d.kind,
            status: d.status,
            hashrate_ths: d.hashrate_ths,
            receivedAtMs: d.received_at.getTime(),
          },
          now,
          defaults.device_stale_after_s,
        );
        for (const s of DEVICE_STATES)
          this.set({ site: d.site, device: d.device, kind: d.kind, state: s }, s === state ? 1 : 0);
      }
    },
  });
}
