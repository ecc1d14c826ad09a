import { describe, expect, it } from 'vitest';
import { dcgmReadings } from './dcgm.ts';
import {
  csvActive,
  csvNumber,
  legacyFieldNames,
  NVIDIA_SMI_FIELDS,
  nvidiaSmiReadings,
} from './nvidia-smi.ts';
import { parseExposition, parseSampleLine } from './prometheus-text.ts';

describe('nvidia-smi CSV', () => {
  it('reads numbers, hex masks and the placeholders', () => {
    expect(csvNumber(' 612.34 ')).toBe(612.34);
    expect(csvNumber('0x0000000000000004')).toBe(4);
    for (const blank of ['[N/A]', '[Not Supported]', '[Unknown Error]', 'N/A', ''])
      expect(csvNumber(blank)).toBeUndefined();
    expect(csvActive('Active')).toBe(true);
    expect(csvActive(' Not Active')).toBe(false);
    expect(csvActive('[N/A]')).toBeUndefined();
  });

  it('makes one reading per line, in catalog units, leaving [N/A] out', () => {
    const line = (index: number, power: string, memTemp: string, mask: string) =>
      [
        index,
        `GPU-${index}`,
        'NVIDIA H100 80GB HBM3',
        power,
        '700.00',
        '61',
        memTemp,
        '97',
        '70000',
        '11559',
        '1980',
        '2619',
        mask,
        'Not Active',
        'Not Active',
        'Not Active',
        'Not Active',
        '0',
        '[N/A]',
      ].join(', ');
    const out = `${line(0, '612.34', '67', '0x0000000000000004')}\n${line(1, '[N/A]', '[N/A]', '[N/A]')}\n`;
    const { readings, unreadable } = nvidiaSmiReadings(out, NVIDIA_SMI_FIELDS, 'node-001', 5);
    expect(unreadable).toBe(0);
    expect(readings[0]).toEqual({
      device: 'node-001/gpu0',
      kind: 'gpu',
      ts: 5,
      status: 'ok',
      model: 'H100 80GB HBM3',
      power_w: 612.34,
      temp_c: 61,
      gpu_util_pct: 97,
      gpu_mem_used_bytes: 70000 * 1048576,
      extras: {
        power_limit_w: 700,
        gpu_mem_temp_c: 67,
        gpu_mem_free_bytes: 11559 * 1048576,
        gpu_sm_clock_mhz: 1980,
        gpu_mem_clock_mhz: 2619,
        gpu_throttle_reasons: 4,
        gpu_ecc_errors_total: { sbe_volatile: 0 },
      },
    });
    expect(readings[1]!.power_w).toBeUndefined();
    // No mask from the driver: built from the reasons, every one "Not Active".
    expect(readings[1]!.extras).toMatchObject({ gpu_throttle_reasons: 0 });
    expect(readings[1]!.extras).not.toHaveProperty('gpu_mem_temp_c');
  });

  it('counts lines that are not a GPU, and knows the pre-535 field names', () => {
    expect(nvidiaSmiReadings('garbage\n\n', NVIDIA_SMI_FIELDS, 'n', 1).unreadable).toBe(1);
    expect(legacyFieldNames(['clocks_event_reasons.active', 'index'])).toEqual([
      'clocks_throttle_reasons.active',
      'index',
    ]);
  });
});

describe('Prometheus text and dcgm-exporter', () => {
  it('parses labels with escapes and special values', () => {
    expect(parseSampleLine('m{a="x\\"y",b="1\\\\2"} 3.5 1700000000000')).toEqual({
      name: 'm',
      labels: { a: 'x"y', b: '1\\2' },
      value: 3.5,
    });
    expect(parseSampleLine('m NaN')!.value).toBeNaN();
    expect(parseSampleLine('m{a="1"} +Inf')!.value).toBe(Number.POSITIVE_INFINITY);
    expect(parseSampleLine('m{a="1" 3')).toBeUndefined();
    expect(parseExposition('# HELP m x\n# TYPE m gauge\nm 1\nbroken{\n').unreadable).toBe(1);
  });

  it('maps DCGM fields per GPU with the remote_write table: MiB to bytes, mJ to J', () => {
    const labels = (gpu: number) =>
      `gpu="${gpu}",UUID="GPU-${gpu}",device="nvidia${gpu}",modelName="NVIDIA H100 80GB HBM3",Hostname="n1"`;
    const page = [
      `DCGM_FI_DEV_POWER_USAGE{${labels(0)}} 612.500000`,
      `DCGM_FI_DEV_GPU_UTIL{${labels(0)}} 97`,
      `DCGM_FI_DEV_FB_USED{${labels(0)}} 70000`,
      `DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{${labels(0)}} 123456789`,
      `DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{${labels(0)}} 2`,
      `DCGM_FI_DEV_MEMORY_TEMP{${labels(1)}} 9223372036854775794`,
      `DCGM_FI_DEV_PCIE_REPLAY_COUNTER{${labels(1)}} 5`,
    ].join('\n');
    const { readings } = dcgmReadings(page, 'node-001', 9);
    expect(readings.map((r) => r.device)).toEqual(['node-001/gpu0', 'node-001/gpu1']);
    expect(readings[0]).toMatchObject({
      model: 'H100 80GB HBM3',
      power_w: 612.5,
      gpu_util_pct: 97,
      gpu_mem_used_bytes: 70000 * 1048576,
      extras: { energy_j_total: 123456.789, gpu_ecc_errors_total: { dbe_volatile: 2 } },
    });
    // The blank is carried raw here; finalizeReading leaves it out (reading.test.ts).
    // The exporter prints 9223372036854775794; as a double it is 2^63.
    expect(readings[1]!.extras).toEqual({ gpu_mem_temp_c: 2 ** 63 });
  });
});
