import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in for NVIDIA dcgm-exporter (port 9400 on a GPU server): `/metrics` in the Prometheus
 * text format, with the metric names, HELP texts, types and labels the real exporter renders
 * (etc/default-counters.csv, plus the ECC and NVLink totals operators enable), for one host of
 * H100s. Values are a fixed function of (host, GPU), so a test knows what every scrape served.
 *
 * As the real exporter, it renders DCGM's "blank" for a field the GPU cannot report (int64
 * fields: 9223372036854775794, DCGM_INT64_NOT_SUPPORTED) and fields hashwatt has no mapping for
 * (the PCIe replay counter, the profiling tensor-pipe ratio).
 */

/** One DCGM field as the exporter declares it. */
export interface DcgmField {
  readonly name: string;
  readonly type: 'gauge' | 'counter';
  readonly help: string;
}

/** The labels dcgm-exporter puts on every series of one GPU (without Kubernetes pod mapping). */
export interface DcgmGpu {
  readonly gpu: number;
  readonly UUID: string;
  readonly pci_bus_id: string;
  readonly device: string;
  readonly modelName: string;
  readonly Hostname: string;
  readonly DCGM_FI_DRIVER_VERSION: string;
}

/** One series of the page: a field of a GPU and the value exactly as rendered. */
export interface DcgmSeries {
  readonly field: string;
  readonly gpu: DcgmGpu;
  readonly rendered: string;
}

export const DCGM_FIELDS: readonly DcgmField[] = [
  { name: 'DCGM_FI_DEV_SM_CLOCK', type: 'gauge', help: 'SM clock frequency (in MHz).' },
  { name: 'DCGM_FI_DEV_MEM_CLOCK', type: 'gauge', help: 'Memory clock frequency (in MHz).' },
  { name: 'DCGM_FI_DEV_MEMORY_TEMP', type: 'gauge', help: 'Memory temperature (in C).' },
  { name: 'DCGM_FI_DEV_GPU_TEMP', type: 'gauge', help: 'GPU temperature (in C).' },
  { name: 'DCGM_FI_DEV_POWER_USAGE', type: 'gauge', help: 'Power draw (in W).' },
  {
    name: 'DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION',
    type: 'counter',
    help: 'Total energy consumption since boot (in mJ).',
  },
  { name: 'DCGM_FI_DEV_PCIE_REPLAY_COUNTER', type: 'counter', help: 'Total number of PCIe retries.' },
  { name: 'DCGM_FI_DEV_GPU_UTIL', type: 'gauge', help: 'GPU utilization (in %).' },
  { name: 'DCGM_FI_DEV_XID_ERRORS', type: 'gauge', help: 'Value of the last XID error encountered.' },
  { name: 'DCGM_FI_DEV_FB_FREE', type: 'gauge', help: 'Framebuffer memory free (in MiB).' },
  { name: 'DCGM_FI_DEV_FB_USED', type: 'gauge', help: 'Framebuffer memory used (in MiB).' },
  {
    name: 'DCGM_FI_DEV_ECC_SBE_VOL_TOTAL',
    type: 'counter',
    help: 'Total number of single-bit volatile ECC errors.',
  },
  {
    name: 'DCGM_FI_DEV_ECC_DBE_VOL_TOTAL',
    type: 'counter',
    help: 'Total number of double-bit volatile ECC errors.',
  },
  {
    name: 'DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL',
    type: 'counter',
    help: 'Total number of NVLink flow-control CRC errors.',
  },
  {
    name: 'DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL',
    type: 'counter',
    help: 'Total number of NVLink retries.',
  },
  {
    name: 'DCGM_FI_PROF_PIPE_TENSOR_ACTIVE',
    type: 'gauge',
    help: 'Ratio of cycles the tensor (HMMA) pipe is active.',
  },
];

/** DCGM_INT64_NOT_SUPPORTED (0x7ffffffffffffff2), as dcgm-exporter prints an unsupported int64 field. */
export const DCGM_INT64_BLANK = '9223372036854775794';
/** H100 80GB HBM3 framebuffer as DCGM reports it (FB_USED + FB_FREE), in MiB. */
const FB_TOTAL_MIB = 81559;
const MODEL = 'NVIDIA H100 80GB HBM3';
const DRIVER = '550.90.07';

/** The GPUs of one host: `hostIndex` makes UUIDs and values differ between hosts. */
export function dcgmHost(hostname: string, hostIndex: number, gpuCount = 8): DcgmGpu[] {
  return Array.from({ length: gpuCount }, (_, gpu) => ({
    gpu,
    UUID: `GPU-${(0x5e1f0000 + hostIndex * 0x100 + gpu).toString(16)}-7c2e-4d4f-9a1b-${(hostIndex * 16 + gpu).toString(16).padStart(12, '0')}`,
    pci_bus_id: `00000000:${(0x18 + gpu * 0x11).toString(16).toUpperCase().padStart(2, '0')}:00.0`,
    device: `nvidia${gpu}`,
    modelName: MODEL,
    Hostname: hostname,
    DCGM_FI_DRIVER_VERSION: DRIVER,
  }));
}

/**
 * The value of a field on a GPU, rendered as dcgm-exporter does (integers plain, doubles with
 * six decimals). A fixed function of (host, GPU): each scrape serves the same page.
 */
export function dcgmValue(field: string, hostIndex: number, gpu: number): string {
  const h = hostIndex;
  const g = gpu;
  const fbUsedMib = 20_000 + 1_500 * g + 700 * h;
  switch (field) {
    case 'DCGM_FI_DEV_SM_CLOCK':
      return String(1980 - 15 * g - 30 * h);
    case 'DCGM_FI_DEV_MEM_CLOCK':
      return '2619';
    case 'DCGM_FI_DEV_MEMORY_TEMP':
      // One GPU whose memory sensor DCGM cannot read.
      return h === 1 && g === 3 ? DCGM_INT64_BLANK : String(52 + g + 2 * h);
    case 'DCGM_FI_DEV_GPU_TEMP':
      return String(45 + g + 3 * h);
    case 'DCGM_FI_DEV_POWER_USAGE':
      return (300 + 40 * h + 12.5 * g + 0.125).toFixed(6);
    case 'DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION':
      // mJ since boot; not a multiple of 1000, so the mJ → J division shows.
      return String(987_654_321_007 + h * 1_000_000_000 + g * 12_345_678);
    case 'DCGM_FI_DEV_PCIE_REPLAY_COUNTER':
      return String(g);
    case 'DCGM_FI_DEV_GPU_UTIL':
      return String(60 + 4 * g + h);
    case 'DCGM_FI_DEV_XID_ERRORS':
      // 79: "GPU has fallen off the bus"; 43: "GPU stopped processing" (a user app fault).
      if (h === 0 && g === 5) return '79';
      return h === 1 && g === 2 ? '43' : '0';
    case 'DCGM_FI_DEV_FB_FREE':
      return String(FB_TOTAL_MIB - fbUsedMib);
    case 'DCGM_FI_DEV_FB_USED':
      return String(fbUsedMib);
    case 'DCGM_FI_DEV_ECC_SBE_VOL_TOTAL':
      return String(g + h);
    case 'DCGM_FI_DEV_ECC_DBE_VOL_TOTAL':
      return h === 1 && g === 7 ? '2' : '0';
    case 'DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL':
      return String(3 * g);
    case 'DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL':
      return String(h + (g % 2));
    case 'DCGM_FI_PROF_PIPE_TENSOR_ACTIVE':
      return (0.25 + 0.05 * g).toFixed(6);
    default:
      throw new Error(`fake dcgm-exporter has no field ${field}`);
  }
}

/** Every series one host's page serves. */
export function dcgmSeries(gpus: readonly DcgmGpu[], hostIndex: number): DcgmSeries[] {
  return DCGM_FIELDS.flatMap((f) =>
    gpus.map((gpu) => ({ field: f.name, gpu, rendered: dcgmValue(f.name, hostIndex, gpu.gpu) })),
  );
}

function renderLabels(gpu: DcgmGpu): string {
  return Object.entries(gpu)
    .map(([name, value]) => `${name}="${String(value)}"`)
    .join(',');
}

/** The `/metrics` page: per field its HELP and TYPE, then one line per GPU, as dcgm-exporter orders it. */
export function renderDcgmPage(gpus: readonly DcgmGpu[], hostIndex: number): string {
  const lines: string[] = [];
  for (const field of DCGM_FIELDS) {
    lines.push(`# HELP ${field.name} ${field.help}`, `# TYPE ${field.name} ${field.type}`);
    for (const gpu of gpus)
      lines.push(`${field.name}{${renderLabels(gpu)}} ${dcgmValue(field.name, hostIndex, gpu.gpu)}`);
  }
  return `${lines.join('\n')}\n`;
}

export interface FakeDcgmExporter {
  /** `host:port`, a Prometheus static target. */
  readonly target: string;
  readonly hostname: string;
  readonly gpus: readonly DcgmGpu[];
  /** Every series the page serves, with its rendered value. */
  readonly series: readonly DcgmSeries[];
  /** How many times `/metrics` was served. */
  scrapes(): number;
  close(): Promise<void>;
}

/** A fake dcgm-exporter for one host on a random loopback port. */
export async function startFakeDcgmExporter(
  hostname: string,
  hostIndex: number,
  gpuCount = 8,
): Promise<FakeDcgmExporter> {
  const gpus = dcgmHost(hostname, hostIndex, gpuCount);
  const page = renderDcgmPage(gpus, hostIndex);
  let scrapes = 0;
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || new URL(req.url ?? '/', 'http://x').pathname !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('404 page not found\n');
      return;
    }
    scrapes++;
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(page);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    target: `127.0.0.1:${port}`,
    hostname,
    gpus,
    series: dcgmSeries(gpus, hostIndex),
    scrapes: () => scrapes,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
