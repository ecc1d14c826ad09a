/**
 * hashwatt simulators: realistic site agents for the service's demo, tests and benchmarks.
 *
 *   const scenario = loadScenario('demo', { scale: 0.1, interval_s: 1, duration_s: 30 });
 *   const tokens = await provisionSites({ url, adminToken, scenario });
 *   const fleet = startFleet({ scenario, url, tokens, seed: 1, trackAcks: true });
 *   const final = await fleet.done;            // or: await fleet.stop({ flushMs: 5000 })
 *   fleet.acknowledged().get('demo-mining-tx') // Set of readingKey(device, tsMs)
 */
export type { DeliveryCounters } from '../src/agent/delivery/counters.ts';
export {
  DEFAULT_DELIVERY_OPTIONS as DEFAULT_AGENT_OPTIONS,
  type DeliveryOptions as AgentOptions,
  type DeliveryOverrides as AgentOverrides,
} from '../src/agent/delivery/delivery.ts';
export { ProvisionError, type ProvisionOptions, provisionSites } from './agent/provision.ts';
export {
  type Clock,
  type FleetCounters,
  type FleetHandle,
  type FleetOptions,
  type FleetStatus,
  startFleet,
} from './fleet.ts';
export { LoadGenerator } from './load/templates.ts';
export { ASIC_MODELS, type AsicModelName } from './physics/asic.ts';
export { GPU_MODELS, type GpuModelName } from './physics/gpu.ts';
export { nameplateItPowerW } from './physics/nameplate.ts';
export { type DeviceKind, type DeviceStatus, type Reading, readingKey } from './physics/reading.ts';
export { METER_DEVICE, SiteSimulation, type SiteSimulationOptions, type SiteTick } from './physics/site.ts';
export {
  type Fault,
  listScenarios,
  loadScenario,
  parseScenario,
  type Scenario,
  ScenarioError,
  type ScenarioOverrides,
  type SiteSpec,
} from './scenario.ts';
export { formatStatusLine, formatSummary } from './status.ts';
