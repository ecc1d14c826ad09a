import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { compileLineProtocolMapping, decodeLineProtocol } from './decode.ts';

const NOW_US = Date.UTC(2026, 11, 1, 10, 0, 0) * 1000;
const TS = '1764583200123456789'; // 2025-12-01T10:00:00.123456789Z
const TS_US = 1764583200123456;
const opts = { precision: 'ns' as const, nowUs: NOW_US };
const byKey = (r: ReturnType<typeof decodeLineProtocol>) =>
  Object.fromEntries(
    r.samples.map((s) => [`${s.device} ${s.metric}${s.index === undefined ? '' : `[${s.index}]`}`, s.value]),
  );

describe('decodeLineProtocol: Telegraf inputs', () => {
  it('maps nvidia_smi fields to host/gpuN with MiB → bytes, ignores version strings', () => {
    const r = decodeLineProtocol(
      `nvidia_smi,compute_mode=Default,host=gpu-node-07,index=3,name=NVIDIA\\ H100\\ 80GB\\ HBM3,pstate=P0,uuid=GPU-1 fan_speed=30i,memory_free=1000i,memory_total=81559i,memory_used=80559i,power_draw=612.5,temperature_gpu=71i,utilization_gpu=97i,clocks_current_sm=1980i,driver_version="550.54.15",cuda_version="12.4" ${TS}`,
      opts,
    );
    expect(r.problems).toEqual([]);
    expect(r.samples[0]).toEqual({
      device: 'gpu-node-07/gpu3',
      kind: 'gpu',
      model: 'NVIDIA H100 80GB HBM3',
      metric: 'gpu_mem_free_bytes',
      tsMs: Math.floor(TS_US / 1000),
      tsUs: TS_US,
      value: 1000 * 1048576,
    });
    expect(byKey(r)).toEqual({
      'gpu-node-07/gpu3 gpu_mem_free_bytes': 1000 * 1048576,
      'gpu-node-07/gpu3 gpu_mem_used_bytes': 80559 * 1048576,
      'gpu-node-07/gpu3 power_w': 612.5,
      'gpu-node-07/gpu3 temp_c': 71,
      'gpu-node-07/gpu3 gpu_util_pct': 97,
      'gpu-node-07/gpu3 gpu_sm_clock_mhz': 1980,
    });
    expect(r.unmappedNames).toEqual(['nvidia_smi.fan_speed', 'nvidia_smi.memory_total']);
    expect(r.unmapped).toBe(2);
  });

  it('maps ipmi_sensor readings by unit and sensor name: total power wins over the PSU sum', () => {
    const lines = (withTotal: boolean) =>
      [
        `ipmi_sensor,host=srv-1,name=power_supply_1,unit=watts value=410 ${TS}`,
        `ipmi_sensor,host=srv-1,name=power_supply_2,unit=watts value=420 ${TS}`,
        withTotal ? `ipmi_sensor,host=srv-1,name=total_power,unit=watts value=835 ${TS}` : '',
        `ipmi_sensor,host=srv-1,name=inlet_temp,unit=degrees_c value=24 ${TS}`,
        `ipmi_sensor,host=srv-1,name=exhaust_temp,unit=degrees_c value=41 ${TS}`,
        `ipmi_sensor,host=srv-1,name=cpu1_temp,unit=degrees_c value=67 ${TS}`,
        `ipmi_sensor,host=srv-1,name=fan_1,unit=rpm value=9000 ${TS}`,
        `ipmi_sensor,host=srv-1,name=fan_2,unit=rpm value=9600 ${TS}`,
        `ipmi_sensor,host=srv-1,name=fan_3,unit=percent value=43 ${TS}`,
        `ipmi_sensor,host=srv-1,name=uid_light value=0,status=1i ${TS}`,
      ].join('\n');
    const r = decodeLineProtocol(lines(true), opts);
    expect(r.problems).toEqual([]);
    expect(byKey(r)).toEqual({
      'srv-1 power_w': 835,
      'srv-1 inlet_temp_c': 24,
      'srv-1 temp_c': 67,
      'srv-1 outlet_temp_c': 41,
      'srv-1 fan_speed_rpm[1]': 9000,
      'srv-1 fan_rpm': 9300,
      'srv-1 fan_speed_rpm[2]': 9600,
    });
    expect(r.samples.every((s) => s.kind === 'other')).toBe(true);
    expect(byKey(decodeLineProtocol(lines(false), opts))['srv-1 power_w']).toBe(830);
    expect(r.unmapped).toBe(2); // the percent fan and the LED
  });

  it('maps modbus registers named after hashwatt metrics, per device and slave', () => {
    const r = decodeLineProtocol(
      `modbus,name=main-meter,slave_id=1,type=holding_register power_w=1.25e6,available_power_w=1.5e6,voltage_v=400 ${TS}`,
      opts,
    );
    expect(byKey(r)).toEqual({ 'main-meter/1 power_w': 1.25e6, 'main-meter/1 available_power_w': 1.5e6 });
    expect(r.samples[0]!.kind).toBe('meter');
    expect(r.unmappedNames).toEqual(['modbus.voltage_v']);
  });

  it("takes hashwatt's own measurement strictly: unknown metrics and wrong types are problems", () => {
    const r = decodeLineProtocol(
      [
        `hashwatt,device=s21-017,kind=asic,model=S21 power_w=3510,hashrate_ths=201.5,chip_temp_c=70 ${TS}`,
        `hashwatt,device=s21-017,kind=asic,index=2 fan_speed_rpm=4100i ${TS}`,
        `hashwatt,device=s21-017 power_kw=3.5,temp_c="hot",fan_rpm=t ${TS}`,
        `hashwatt,kind=asic power_w=1 ${TS}`,
        `hashwatt,device=x power_w=9007199254740993i ${TS}`,
      ].join('\n'),
      opts,
    );
    expect(byKey(r)).toEqual({
      's21-017 power_w': 3510,
      's21-017 hashrate_ths': 201.5,
      's21-017 chip_temp_c': 70,
      's21-017 fan_speed_rpm[2]': 4100,
    });
    expect(r.samples[0]).toMatchObject({ kind: 'asic', model: 'S21' });
    expect(r.problems.map((p) => [p.where, p.code])).toEqual([
      ['line 3 field power_kw', 'unknown_metric'],
      ['line 3 field temp_c', 'wrong_type'],
      ['line 3 field fan_rpm', 'wrong_type'],
      ['line 4', 'missing_device_tag'],
      ['line 5 field power_w', 'integer_not_exact'],
    ]);
    expect(r.badLines).toBe(0);
  });

  it('counts unknown measurements as unmapped fields', () => {
    const r = decodeLineProtocol(
      `cpu,host=a usage_idle=99,usage_user=1 ${TS}\ncpu,host=b usage_idle=98 ${TS}`,
      opts,
    );
    expect(r.samples).toEqual([]);
    expect(r.unmapped).toBe(3);
    expect(r.unmappedNames).toEqual(['cpu.usage_idle', 'cpu.usage_user']);
  });
});

describe('decodeLineProtocol: time and partial writes', () => {
  it('stamps lines without a timestamp with the receive time; honours the precision', () => {
    const r = decodeLineProtocol('hashwatt,device=a power_w=1\nhashwatt,device=b power_w=2 1764583200', {
      precision: 's',
      nowUs: NOW_US,
    });
    expect(r.samples.map((s) => [s.device, s.tsUs, s.tsMs])).toEqual([
      ['a', NOW_US, NOW_US / 1000],
      ['b', 1764583200_000_000, 1764583200_000],
    ]);
  });

  it('keeps the good lines and names the first bad line for a 422', () => {
    const r = decodeLineProtocol(
      [
        'hashwatt,device=a power_w=1',
        'hashwatt,device=b power_w=',
        '# fine',
        'hashwatt,device=c power_w=3',
        'bad line',
      ].join('\n'),
      opts,
    );
    expect(r.samples.map((s) => s.device)).toEqual(['a', 'c']);
    expect(r.lines).toBe(4);
    expect(r.badLines).toBe(2);
    expect(r.firstBadLine).toEqual({
      line: 2,
      message: 'field power_w has an empty value',
      text: 'hashwatt,device=b power_w=',
    });
    expect(r.problems.map((p) => p.where)).toEqual(['line 2', 'line 5']);
  });

  it('invalid UTF-8 is fatal; a gzipped body must be gunzipped first (it is not text)', () => {
    expect(decodeLineProtocol(new Uint8Array([0x6d, 0x20, 0xff, 0xfe]), opts).fatal?.code).toBe(
      'invalid_utf8',
    );
    const gz = decodeLineProtocol(gzipSync('hashwatt,device=a power_w=1'), opts);
    expect(gz.samples).toEqual([]);
    expect(gz.fatal !== undefined || gz.badLines > 0).toBe(true);
  });

  it('bounds the problem list of a hostile body and counts the rest', () => {
    const body = Array.from({ length: 1000 }, () => 'm').join('\n');
    const r = decodeLineProtocol(body, opts);
    expect(r.problems).toHaveLength(100);
    expect(r.problemsDropped).toBe(900);
    expect(r.badLines).toBe(1000);
  });

  it('accepts a replacement mapping table', () => {
    const mapping = compileLineProtocolMapping({
      measurements: {
        pdu: {
          device: { device: ['{pdu}/outlet{outlet}'], kind: 'pdu' },
          fields: { watts: [{ metric: 'power_w' }] },
        },
      },
    });
    const r = decodeLineProtocol(`pdu,pdu=a1,outlet=4 watts=230 ${TS}\nhashwatt,device=a power_w=1 ${TS}`, {
      ...opts,
      mapping,
    });
    expect(byKey(r)).toEqual({ 'a1/outlet4 power_w': 230 });
    expect(r.unmappedNames).toEqual(['hashwatt.power_w']);
  });
});
