/**
 * A whole simulated site on its devices' real protocols: every ASIC of the site spec answering
 * its firmware's API on its own loopback address (127.0.20.1, .2, … at port 4028 or 4433), the
 * site meter on Modbus TCP, GPU servers behind a dcgm-exporter or a fake nvidia-smi, all driven
 * by the site's physics in real time. `agentConfig()` is the site.yaml a real agent needs to poll it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ASIC_MODELS, type AsicModelName } from '../physics/asic.ts';
import { METER_DEVICE, SiteSimulation } from '../physics/site.ts';
import type { Fault, SiteSpec } from '../scenario.ts';
import { SimulatedGpuHost } from './gpu-host.ts';
import { type MinerBehaviour, SimulatedMiner } from './miner.ts';
import { type MeterFault, type SimMeterModel, SimulatedMeter } from './modbus-meter.ts';

/** The address `offset` hosts after `base` on loopback, skipping .0 and .255 so addresses look like hosts. */
export function loopbackAddress(base: string, offset: number): string {
  const parts = base.split('.').map(Number);
  let n = ((parts[0]! * 256 + parts[1]!) * 256 + parts[2]!) * 256 + parts[3]!;
  for (let i = 0; i < offset; i++) {
    n++;
    while ((n & 255) === 0 || (n & 255) === 255) n++;
  }
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/**
 * The default firmware of an ASIC: Bitmain models 60 % stock, 20 % Braiins OS, 20 % LuxOS;
 * Whatsminers half on API V2 (4028), half on V3 (4433).
 */
export function defaultBehaviour(index: number, model: AsicModelName): MinerBehaviour {
  if (ASIC_MODELS[model].vendor === 'MicroBT')
    return { api: index % 2 === 0 ? 'whatsminer' : 'whatsminer-v3' };
  const slot = index % 10;
  return { api: slot < 6 ? 'antminer' : slot < 8 ? 'braiins' : 'luxos' };
}

export interface ProtocolSiteOptions {
  site: SiteSpec;
  seed?: number;
  /** Seconds between physics ticks. */
  intervalS: number;
  randomFailures?: boolean;
  faults?: readonly Fault[];
  /** Address of the first miner; the others follow. */
  minerBase: string;
  /** The meter's address (default: the address after the last miner). */
  meterHost?: string;
  /** Address of the first GPU host's exporter. */
  gpuBase?: string;
  /** Each device at its protocol's real port (default), or at any free port of 127.0.0.1. */
  realPorts?: boolean;
  behaviour?: (index: number, model: AsicModelName) => MinerBehaviour;
  meterModel?: SimMeterModel;
  meterFault?: MeterFault;
  /** Publish the site's allowed power on a second Modbus unit (the agent reads it as a register). */
  gridSignalUnitId?: number;
  gpuSource?: 'dcgm' | 'nvidia-smi';
  /** Keep each served summary (tests); off for benchmarks. */
  recordServed?: boolean;
}

export interface AgentSections {
  miners: Record<string, unknown>[];
  meters: Record<string, unknown>[];
  gpus: Record<string, unknown>[];
}

export class ProtocolSite {
  readonly site: SiteSpec;
  readonly miners: SimulatedMiner[] = [];
  readonly meter: SimulatedMeter | null;
  readonly gpuHosts: SimulatedGpuHost[] = [];
  readonly #sim: SiteSimulation;
  readonly #realPorts: boolean;
  readonly #stateDir: string | null;
  #timer: NodeJS.Timeout | null = null;
  /** Ticks stepped so far. */
  ticks = 0;

  private constructor(options: ProtocolSiteOptions) {
    this.site = options.site;
    this.#realPorts = options.realPorts ?? true;
    const startMs = Math.floor(Date.now() / 1000) * 1000;
    this.#sim = new SiteSimulation(options.site, {
      seed: options.seed ?? 1,
      startMs,
      intervalS: options.intervalS,
      faults: options.faults ?? [],
      randomFailures: options.randomFailures ?? false,
      details: true,
    });
    const first = this.#sim.step();
    const behaviour = options.behaviour ?? defaultBehaviour;
    const host = (base: string, i: number) => (this.#realPorts ? loopbackAddress(base, i) : '127.0.0.1');
    for (const detail of first.asics ?? []) {
      const b = behaviour(detail.index, detail.model);
      const miner = new SimulatedMiner({
        device: detail.name,
        index: detail.index,
        model: detail.model,
        host: host(options.minerBase, detail.index),
        ...(!this.#realPorts && { port: 0 }),
        behaviour: b,
        // Miners booted over the last day, not all at once.
        bootMs: startMs - ((detail.index * 7919) % 86_400) * 1000,
        recordServed: options.recordServed ?? true,
      });
      miner.update(detail, first.ambientC);
      this.miners.push(miner);
    }
    const meterHost = options.meterHost ?? host(options.minerBase, this.miners.length + 1);
    this.meter = options.site.meter
      ? new SimulatedMeter({
          host: meterHost,
          ...(!this.#realPorts && { port: 0 }),
          model: options.meterModel ?? 'eastron-sdm630',
          ...(options.meterFault && { fault: options.meterFault }),
          ...(options.gridSignalUnitId !== undefined && { signalUnitId: options.gridSignalUnitId }),
          recordServed: options.recordServed ?? true,
        })
      : null;
    this.meter?.update(first.facilityPowerW, first.availablePowerW);
    const servers = first.gpuServers ?? [];
    this.#stateDir =
      servers.length > 0 && options.gpuSource === 'nvidia-smi'
        ? mkdtempSync(path.join(tmpdir(), 'hashwatt-fake-gpu-'))
        : null;
    servers.forEach((detail, i) => {
      const gpuHost = new SimulatedGpuHost({
        name: detail.name,
        index: i,
        model: detail.model,
        source: options.gpuSource ?? 'dcgm',
        host: host(options.gpuBase ?? loopbackAddress(meterHost, 1), i),
        ...(!this.#realPorts && { port: 0 }),
        ...(this.#stateDir && { stateDir: this.#stateDir }),
      });
      this.gpuHosts.push(gpuHost);
    });
    this.ticks = 1;
    this.#firstGpu = servers;
  }

  readonly #firstGpu: NonNullable<ReturnType<SiteSimulation['step']>['gpuServers']>;

  /** Starts every device listening and the physics ticking in real time. */
  static async start(options: ProtocolSiteOptions): Promise<ProtocolSite> {
    const site = new ProtocolSite(options);
    try {
      // Listeners open in batches: thousands at once would only queue in the kernel anyway.
      for (let i = 0; i < site.miners.length; i += 500)
        await Promise.all(site.miners.slice(i, i + 500).map((m) => m.listen()));
      await site.meter?.listen();
      for (const [i, g] of site.gpuHosts.entries()) g.update(site.#firstGpu[i]!);
      await Promise.all(site.gpuHosts.map((g) => g.listen()));
    } catch (error) {
      await site.stop();
      throw error;
    }
    site.#timer = setInterval(() => site.#tick(), options.intervalS * 1000);
    site.#timer.unref();
    return site;
  }

  #tick(): void {
    const tick = this.#sim.step();
    this.ticks++;
    const asics = tick.asics ?? [];
    for (let i = 0; i < asics.length; i++) this.miners[i]!.update(asics[i]!, tick.ambientC);
    this.meter?.update(tick.facilityPowerW, tick.availablePowerW);
    for (const [i, detail] of (tick.gpuServers ?? []).entries()) this.gpuHosts[i]?.update(detail);
  }

  /** The meter's device name in readings. */
  get meterDevice(): string {
    return METER_DEVICE;
  }

  /**
   * The `miners`, `meters` and `gpus` sections of a site.yaml that polls this site, devices named
   * as the physics names them. `api: auto` at real ports (the agent finds 4028 or 4433 itself).
   */
  agentSections(options: { auto?: boolean } = {}): AgentSections {
    const auto = options.auto ?? this.#realPorts;
    const miners = this.miners.map((m) => ({
      address: m.host,
      name: m.device,
      ...(auto
        ? { api: 'auto' }
        : { api: m.behaviour.api === 'whatsminer-v3' ? 'whatsminer-v3' : 'cgminer', port: m.port }),
    }));
    const meters = this.meter
      ? [
          {
            name: METER_DEVICE,
            host: this.meter.host,
            port: this.meter.port,
            unit_id: this.meter.unitId,
            model: this.meter.model,
            ...(this.meter.signalUnitId !== undefined
              ? {
                  available_power_register: {
                    unit_id: this.meter.signalUnitId,
                    address: 100,
                    type: 'u32',
                    unit: 'kW',
                    function: 'holding',
                  },
                }
              : { available_power_w: this.site.capacity_kw * 1000 }),
          },
        ]
      : [];
    const gpus = this.gpuHosts.map((g) =>
      g.source === 'dcgm'
        ? { name: g.name, dcgm: g.url }
        : { name: g.name, nvidia_smi: g.nvidiaSmiCommand() },
    );
    return { miners, meters, gpus };
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await Promise.all([
      ...this.miners.map((m) => m.close()),
      this.meter?.close(),
      ...this.gpuHosts.map((g) => g.close()),
    ]);
    if (this.#stateDir) rmSync(this.#stateDir, { recursive: true, force: true });
  }
}
