/**
 * Register maps shipped for common meters. Any other meter or PDU is a `registers:` block in
 * site.yaml with the same fields (docs/agent.md). Addresses are 0-based (manual register − 1).
 */
import type { RegisterMap } from './registers.ts';

/**
 * Eastron SDM630 (v2) three-phase meter, the common DIN-rail meter of container sites: input
 * registers (function 4), IEEE-754 float32, high word first. Manual: "Total system power" 30053
 * (W), "Total import kWh" 30073.
 */
export const EASTRON_SDM630: RegisterMap = {
  model: 'eastron-sdm630',
  label: 'Eastron SDM630 (input registers, float32)',
  wordOrder: 'big',
  function: 'input',
  fields: [
    { metric: 'power_w', address: 52, type: 'f32', unit: 'W' },
    { metric: 'energy_j_total', address: 72, type: 'f32', unit: 'kWh' },
  ],
};

/**
 * Schneider Electric PowerLogic PM5560 (PM5000 series), a substation / main-switchboard meter:
 * holding registers (function 3), high word first. Manual: "Active Power Total" 3060 (float32,
 * kW), "Active Energy Delivered (Into Load)" 3204 (int64, Wh).
 */
export const SCHNEIDER_PM5560: RegisterMap = {
  model: 'schneider-pm5560',
  label: 'Schneider Electric PM5560 (holding registers, float32 kW, int64 Wh)',
  wordOrder: 'big',
  function: 'holding',
  fields: [
    { metric: 'power_w', address: 3059, type: 'f32', unit: 'kW' },
    { metric: 'energy_j_total', address: 3203, type: 'i64', unit: 'Wh' },
  ],
};

export const METER_MAPS: Readonly<Record<string, RegisterMap>> = {
  [EASTRON_SDM630.model]: EASTRON_SDM630,
  [SCHNEIDER_PM5560.model]: SCHNEIDER_PM5560,
};
