#!/usr/bin/env node
/**
 * Serves a simulated site on its devices' real protocols until stopped, and writes the site.yaml
 * sections an agent needs to poll it. `node simulators/protocols/cli.ts --help`.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import type { AsicModelName } from '../physics/asic.ts';
import { loadScenario, parseScenario, type SiteSpec } from '../scenario.ts';
import { ProtocolSite } from './site.ts';

const HELP = `Usage: node simulators/protocols/cli.ts [options]

Simulated miners answer the CGMiner API (Antminer stock, Braiins OS, LuxOS, Whatsminer V2) on
4028 and the Whatsminer API V3 on 4433, one loopback address each; the site meter answers Modbus
TCP; GPU servers serve a dcgm-exporter page or a fake nvidia-smi. Ctrl-C stops.

  --miners N            a mining site of N ASICs (40 % S21, 30 % S19 XP, 30 % Whatsminer M60S)
  --scenario NAME --site SITE   or: a scenario's site, its devices as the scenario says
  --gpu-servers N       GPU servers of 8 H100s (with --miners)
  --gpu-source S        dcgm (default) or nvidia-smi
  --base ADDR           address of the first miner (default 127.0.40.1; the others follow)
  --any-port            every device at a free port of 127.0.0.1 (where 127.0.0.2… cannot be bound)
  --interval S          seconds between physics ticks (default 10)
  --config-out FILE     write the miners/meters/gpus sections of a site.yaml polling this site
  -h, --help`;

function fail(message: string): never {
  process.stderr.write(`protocols: ${message}\n`);
  process.exit(2);
}

function miningSite(count: number, gpuServers: number): SiteSpec {
  const s21 = Math.round(count * 0.4);
  const xp = Math.round(count * 0.3);
  const asic: Partial<Record<AsicModelName, number>> = { S21: s21, 'S19 XP': xp, M60S: count - s21 - xp };
  const kw = (s21 * 3500 + xp * 3010 + (count - s21 - xp) * 3441 + gpuServers * 8600) / 1000;
  return parseScenario({
    name: 'protocols',
    sites: [
      {
        name: 'protocols',
        kind: gpuServers > 0 ? 'mixed' : 'mining',
        capacity_kw: Math.max(1, Math.ceil(kw * 1.3)),
        devices: { asic, gpu_servers: gpuServers },
      },
    ],
  }).sites[0]!;
}

async function main(): Promise<void> {
  let values: ReturnType<typeof parse>['values'];
  function parse() {
    return parseArgs({
      options: {
        miners: { type: 'string' },
        scenario: { type: 'string' },
        site: { type: 'string' },
        'gpu-servers': { type: 'string' },
        'gpu-source': { type: 'string' },
        base: { type: 'string' },
        'any-port': { type: 'boolean' },
        interval: { type: 'string' },
        'config-out': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  }
  try {
    values = parse().values;
  } catch (error) {
    fail(`${(error as Error).message}\n${HELP}`);
  }
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  let spec: SiteSpec;
  if (values.scenario) {
    const scenario = loadScenario(values.scenario);
    const found = scenario.sites.find((s) => s.name === (values.site ?? scenario.sites[0]!.name));
    if (!found)
      fail(`no site "${values.site}" in ${values.scenario}: ${scenario.sites.map((s) => s.name).join(', ')}`);
    spec = found;
  } else {
    const n = Number(values.miners ?? 50);
    if (!Number.isInteger(n) || n < 1) fail('--miners expects a positive integer');
    spec = miningSite(n, Number(values['gpu-servers'] ?? 0));
  }
  const gpuSource = values['gpu-source'] ?? 'dcgm';
  if (gpuSource !== 'dcgm' && gpuSource !== 'nvidia-smi') fail('--gpu-source must be dcgm or nvidia-smi');
  const interval = Number(values.interval ?? 10);
  if (!(interval > 0)) fail('--interval expects seconds');
  const site = await ProtocolSite.start({
    site: spec,
    intervalS: interval,
    minerBase: values.base ?? '127.0.40.1',
    realPorts: !values['any-port'],
    gpuSource,
    recordServed: false,
  }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EADDRNOTAVAIL')
      fail(`${error.message}: this system answers only on 127.0.0.1; use --any-port`);
    if (error.code === 'EADDRINUSE')
      fail(`${error.message}: another simulator runs there; pick another --base`);
    throw error;
  });
  const sections = site.agentSections();
  if (values['config-out']) writeFileSync(values['config-out'], stringify(sections));
  const first = site.miners[0];
  process.stdout.write(
    `ready: ${site.miners.length} miners${first ? ` from ${first.host}` : ''}, ${site.meter ? `meter at ${site.meter.host}:${site.meter.port}, ` : ''}${site.gpuHosts.length} GPU servers\n`,
  );
  const stop = async () => {
    await site.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

await main();
