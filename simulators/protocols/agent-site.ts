/**
 * A scenario site with `collection: site_agent`: its devices on their real protocols
 * (./site.ts) and a real hashwatt site agent (src/agent/) polling them and pushing to the service,
 * in this process. The fleet sees its delivery counters like any simulated site's.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { Agent } from '../../src/agent/agent.ts';
import { parseAgentConfig } from '../../src/agent/config.ts';
import { createCounters, type DeliveryCounters } from '../../src/agent/delivery/counters.ts';
import type { Fault, SiteSpec } from '../scenario.ts';
import { ProtocolSite } from './site.ts';

export interface AgentSiteOptions {
  site: SiteSpec;
  url: string;
  token: string;
  seed: number;
  intervalS: number;
  randomFailures: boolean;
  faults: readonly Fault[];
  trackAcks: boolean;
}

/** Runs one site_agent site; `counters()` and `drain()` are its agent's delivery. */
export class AgentSiteRunner {
  readonly site: string;
  readonly #options: AgentSiteOptions;
  #devices: ProtocolSite | null = null;
  #agent: Agent | null = null;
  #spoolDir: string | null = null;
  #starting: Promise<void> | null = null;
  #stopped = false;
  #startError: string | null = null;

  constructor(options: AgentSiteOptions) {
    this.site = options.site.name;
    this.#options = options;
  }

  /** Starts the devices, then the agent polling them. */
  start(): Promise<void> {
    this.#starting ??= this.#start().catch((error: Error) => {
      this.#startError = `site agent did not start: ${error.message}`;
    });
    return this.#starting;
  }

  async #start(): Promise<void> {
    const o = this.#options;
    const protocols = o.site.site_agent;
    const devices = await ProtocolSite.start({
      site: o.site,
      seed: o.seed,
      intervalS: o.intervalS,
      randomFailures: o.randomFailures,
      faults: o.faults,
      minerBase: protocols.miner_base,
      realPorts: protocols.real_ports,
      gpuSource: protocols.gpu_source,
      meterModel: protocols.meter_model,
      ...(protocols.grid_signal_unit_id !== undefined && { gridSignalUnitId: protocols.grid_signal_unit_id }),
      recordServed: false,
    });
    this.#devices = devices;
    if (this.#stopped) return;
    this.#spoolDir = mkdtempSync(path.join(tmpdir(), `hashwatt-agent-${o.site.name}-`));
    const timeoutS = Math.min(5, Math.max(0.5, o.intervalS * 0.8));
    const text = stringify({
      hashwatt: { url: o.url, token: o.token, transport: o.site.transport === 'http' ? 'http' : 'ws' },
      spool: { dir: this.#spoolDir },
      health: { listen: false },
      poll: {
        miners: { interval_s: o.intervalS, timeout_s: timeoutS },
        meters: { interval_s: o.intervalS, timeout_s: timeoutS },
        gpus: { interval_s: o.intervalS, timeout_s: timeoutS },
      },
      ...devices.agentSections(),
      log_level: 'silent',
    });
    const config = parseAgentConfig(text, {
      source: path.join(this.#spoolDir, 'site.yaml'),
      env: {},
      readFile: () => '',
    });
    this.#agent = await Agent.start(config, { trackAcks: o.trackAcks });
  }

  counters(): DeliveryCounters {
    return this.#agent?.delivery.counters() ?? createCounters();
  }

  get acknowledged(): Set<string> | null {
    return this.#agent?.delivery.acknowledged ?? null;
  }

  /** The agent's last delivery error, or why it did not start. */
  get lastError(): string | null {
    return this.#startError ?? this.#agent?.delivery.lastError ?? null;
  }

  /** Stops polling and delivers what the agent holds for up to flushMs; true when nothing is left. */
  async drain(flushMs: number): Promise<boolean> {
    this.#stopped = true;
    await this.#starting;
    if (!this.#agent) return true;
    const { drained } = await this.#agent.stop({ flushMs });
    return drained;
  }

  async close(): Promise<void> {
    this.#stopped = true;
    await this.#starting;
    await this.#agent?.stop({ flushMs: 0 });
    await this.#devices?.stop();
    if (this.#spoolDir) rmSync(this.#spoolDir, { recursive: true, force: true });
  }
}
