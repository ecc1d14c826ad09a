/**
 * A simulated GPU server as the agent meets it: a dcgm-exporter `/metrics` on port 9400, or the
 * state a fake `nvidia-smi` (./nvidia-smi.ts) prints from. Both follow the site's physics (job
 * load, power, memory, temperatures); a GPU that fell off the bus is missing, as on real nodes.
 */
import { renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { GPU_MODELS, type GpuModelName } from '../physics/gpu.ts';
import type { GpuServerDetail } from '../physics/site.ts';
import { listenTcp } from './listen.ts';

const MIB = 1024 * 1024;
const DRIVER = '550.90.07';

/** What nvidia-smi and DCGM report of one GPU. */
export interface GpuState {
  index: number;
  uuid: string;
  name: string;
  pciBusId: string;
  lost: boolean;
  powerW: number;
  powerLimitW: number;
  tempC: number;
  memTempC: number;
  utilPct: number;
  memUsedMiB: number;
  memTotalMiB: number;
  smClockMhz: number;
  memClockMhz: number;
  /** NVML clock-event reasons: 0x1 idle, 0x4 software power cap. */
  throttleMask: number;
  energyMj: number;
  eccSbe: number;
  eccDbe: number;
  xidLast: number;
}

/** The file the fake nvidia-smi reads. */
export interface NvidiaSmiState {
  driver: string;
  gpus: GpuState[];
}

export interface SimulatedGpuHostOptions {
  name: string;
  /** Index of the server in its site (UUIDs and bus ids derive from it). */
  index: number;
  model: GpuModelName;
  source: 'dcgm' | 'nvidia-smi';
  /** dcgm: where the exporter listens. */
  host?: string;
  port?: number;
  /** nvidia-smi: the directory its state file goes in. */
  stateDir?: string;
  /** dcgm: GPU 3 reports DCGM's int64 blank for its memory temperature, as unsupported fields do. */
  blanks?: boolean;
  now?: () => number;
}

const MODEL_NAMES: Record<GpuModelName, string> = {
  'H100 SXM': 'NVIDIA H100 80GB HBM3',
  'H200 SXM': 'NVIDIA H200',
};

export class SimulatedGpuHost {
  readonly name: string;
  readonly index: number;
  readonly source: 'dcgm' | 'nvidia-smi';
  readonly host: string;
  port: number;
  readonly stats = { scrapes: 0, stateWrites: 0 };
  /** Each scrape served (dcgm): when, and how many GPUs it carried. */
  readonly served: { atMs: number; gpus: number }[] = [];
  readonly #stateFile: string | null;
  readonly #blanks: boolean;
  readonly #now: () => number;
  readonly #gpus: GpuState[];
  #server: http.Server | null = null;
  #lastMs: number;
  readonly #offBus = new Set<number>();

  constructor(options: SimulatedGpuHostOptions) {
    this.name = options.name;
    this.index = options.index;
    this.source = options.source;
    this.host = options.host ?? '127.0.0.1';
    this.port = options.port ?? 9400;
    this.#stateFile = options.stateDir
      ? path.join(options.stateDir, `${options.name.replaceAll('/', '_')}.json`)
      : null;
    this.#blanks = options.blanks ?? false;
    this.#now = options.now ?? Date.now;
    this.#lastMs = this.#now();
    const memTotalMiB = Math.round(GPU_MODELS[options.model].memBytes / MIB);
    this.#gpus = Array.from({ length: 8 }, (_, g) => ({
      index: g,
      uuid: `GPU-${(0x5e1f0000 + options.index * 0x100 + g).toString(16)}-7c2e-4d4f-9a1b-${(options.index * 16 + g).toString(16).padStart(12, '0')}`,
      name: MODEL_NAMES[options.model],
      pciBusId: `00000000:${(0x18 + g * 0x11).toString(16).toUpperCase().padStart(2, '0')}:00.0`,
      lost: false,
      powerW: GPU_MODELS[options.model].idleW,
      powerLimitW: GPU_MODELS[options.model].tdpW,
      tempC: 35,
      memTempC: 40,
      utilPct: 0,
      memUsedMiB: 512,
      memTotalMiB,
      smClockMhz: 345,
      memClockMhz: 2619,
      throttleMask: 1,
      energyMj: 1e12 + options.index * 1e9 + g * 1e8,
      eccSbe: 0,
      eccDbe: 0,
      xidLast: 0,
    }));
  }

  /** The command that runs the fake nvidia-smi for this host (the agent appends the query). */
  nvidiaSmiCommand(): string[] {
    if (!this.#stateFile) throw new Error(`${this.name}: no state directory`);
    return [process.execPath, path.join(import.meta.dirname, 'nvidia-smi.ts'), '--state', this.#stateFile];
  }

  get url(): string {
    return `http://${this.host}:${this.port}/metrics`;
  }

  /** GPU `index` falls off the bus now and stays off, whatever the physics says (tests). */
  fallOffBus(index: number): void {
    this.#offBus.add(index);
    this.#gpus[index]!.lost = true;
    if (this.#stateFile) this.#writeState();
  }

  /** The GPUs now, from the physics' latest tick of this server. */
  update(detail: GpuServerDetail): void {
    const now = this.#now();
    const dtS = (now - this.#lastMs) / 1000;
    this.#lastMs = now;
    detail.gpus.forEach((sample, g) => {
      const gpu = this.#gpus[g]!;
      gpu.energyMj += gpu.powerW * dtS * 1000;
      if (!sample || this.#offBus.has(g)) {
        gpu.lost = true;
        return;
      }
      gpu.lost = false;
      gpu.powerW = Math.round(sample.powerW * 100) / 100;
      gpu.tempC = Math.round(sample.tempC);
      gpu.memTempC = Math.round(sample.tempC + 6);
      gpu.utilPct = sample.utilPct;
      gpu.memUsedMiB = Math.round(sample.memUsedBytes / MIB);
      gpu.smClockMhz = sample.utilPct > 0 ? 1980 : 345;
      gpu.throttleMask = sample.utilPct === 0 ? 0x1 : sample.powerW > gpu.powerLimitW * 0.98 ? 0x4 : 0;
      if (sample.status === 'error') gpu.xidLast = 79;
    });
    if (this.#stateFile) this.#writeState();
  }

  gpus(): readonly GpuState[] {
    return this.#gpus;
  }

  #writeState(): void {
    const state: NvidiaSmiState = { driver: DRIVER, gpus: this.#gpus };
    // Written whole and renamed, so the fake never prints a half-written state.
    const tmp = `${this.#stateFile}.tmp`;
    writeFileSync(tmp, JSON.stringify(state));
    renameSync(tmp, this.#stateFile!);
    this.stats.stateWrites++;
  }

  async listen(): Promise<void> {
    if (this.source === 'nvidia-smi') {
      this.#writeState();
      return;
    }
    const server = http.createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end();
        return;
      }
      this.stats.scrapes++;
      const page = this.dcgmPage();
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(page, () => {
        this.served.push({ atMs: this.#now(), gpus: this.#gpus.filter((g) => !g.lost).length });
      });
    });
    this.port = await listenTcp(server, this.host, this.port);
    this.#server = server;
  }

  /** The exporter's page: HELP, TYPE and one series per field and GPU, labelled as dcgm-exporter does. */
  dcgmPage(): string {
    const fields: [string, 'gauge' | 'counter', string, (g: GpuState) => number | string][] = [
      ['DCGM_FI_DEV_SM_CLOCK', 'gauge', 'SM clock frequency (in MHz).', (g) => g.smClockMhz],
      ['DCGM_FI_DEV_MEM_CLOCK', 'gauge', 'Memory clock frequency (in MHz).', (g) => g.memClockMhz],
      [
        'DCGM_FI_DEV_MEMORY_TEMP',
        'gauge',
        'Memory temperature (in C).',
        (g) => (this.#blanks && g.index === 3 ? '9223372036854775794' : g.memTempC),
      ],
      ['DCGM_FI_DEV_GPU_TEMP', 'gauge', 'GPU temperature (in C).', (g) => g.tempC],
      ['DCGM_FI_DEV_POWER_USAGE', 'gauge', 'Power draw (in W).', (g) => g.powerW.toFixed(6)],
      [
        'DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION',
        'counter',
        'Total energy consumption since boot (in mJ).',
        (g) => Math.round(g.energyMj),
      ],
      ['DCGM_FI_DEV_PCIE_REPLAY_COUNTER', 'counter', 'Total number of PCIe retries.', () => 0],
      ['DCGM_FI_DEV_GPU_UTIL', 'gauge', 'GPU utilization (in %).', (g) => g.utilPct],
      ['DCGM_FI_DEV_XID_ERRORS', 'gauge', 'Value of the last XID error encountered.', (g) => g.xidLast],
      [
        'DCGM_FI_DEV_FB_FREE',
        'gauge',
        'Framebuffer memory free (in MiB).',
        (g) => g.memTotalMiB - g.memUsedMiB,
      ],
      ['DCGM_FI_DEV_FB_USED', 'gauge', 'Framebuffer memory used (in MiB).', (g) => g.memUsedMiB],
    ];
    const lines: string[] = [];
    for (const [name, type, help, value] of fields) {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const g of this.#gpus) {
        if (g.lost) continue;
        lines.push(
          `${name}{gpu="${g.index}",UUID="${g.uuid}",pci_bus_id="${g.pciBusId}",device="nvidia${g.index}",modelName="${g.name}",Hostname="${this.name}",DCGM_FI_DRIVER_VERSION="${DRIVER}"} ${value(g)}`,
        );
      }
    }
    return `${lines.join('\n')}\n`;
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }
}
