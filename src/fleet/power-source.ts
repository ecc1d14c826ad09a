import type { AvailableSource, DrawnSource } from './site-state.ts';

/** What a site's power figures are made from, now (the fleet) or over one step (history). */
export interface PowerInputs {
  /** Meters the site has. */
  metersTotal: number;
  /** Meters that reported power (now: fresh; in a step: with a value in it). */
  metersReporting: number;
  /** Sum of those meters' power, null when none. */
  meterPowerW: number | null;
  /** Meters that carried `available_power_w`, and its sum. */
  metersWithAvailable: number;
  meterAvailableW: number | null;
  /** Sum of the ASICs', GPUs' and other devices' own power (never PDUs: they measure the same power again). */
  devicePowerW: number;
  capacityW: number;
}

export interface PowerFigures {
  drawnW: number;
  drawnSource: DrawnSource;
  availableW: number;
  availableSource: AvailableSource;
  surplusW: number;
}

/**
 * The site's drawn and available power by the one rule of the fleet view, history and energy: a
 * meter is believed only while every meter of the site reports (a partial sum would under-report),
 * else the devices' own power is summed; what the site may draw comes from the meters when all of
 * them carry it, else from its contracted capacity.
 */
export function sitePower(p: PowerInputs): PowerFigures {
  const meterTrusted = p.metersTotal > 0 && p.metersReporting === p.metersTotal && p.meterPowerW !== null;
  const drawnW = meterTrusted ? p.meterPowerW! : p.devicePowerW;
  const availableFromMeter =
    meterTrusted && p.metersWithAvailable === p.metersTotal && p.meterAvailableW !== null;
  const availableW = availableFromMeter ? p.meterAvailableW! : p.capacityW;
  return {
    drawnW,
    drawnSource: meterTrusted ? 'meter' : 'devices',
    availableW,
    availableSource: availableFromMeter ? 'meter' : 'capacity',
    surplusW: availableW - drawnW,
  };
}
