/**
 * What each simulated firmware answers on the CGMiner API: the replies' shapes, field names,
 * units and number formats as the real firmware prints them (Antminer bmminer, Braiins OS
 * bosminer, LuxOS, Whatsminer btminer V2, a generic cgminer fork), written from their public API
 * documents and captured replies. Values come from the physics (a `MinerView` of one miner now).
 */

/** A miner at one instant, in its firmware's terms. */
export interface MinerView {
  nowS: number;
  elapsedS: number;
  /** "Antminer S21", "M60S.VK30". */
  type: string;
  mode: 'hashing' | 'curtailed' | 'error';
  hashrateThs: number;
  expectedThs: number;
  powerW: number;
  powerLimitW: number;
  chains: { rateThs: number; chipC: number; boardC: number; hw: number; chips: number }[];
  fansRpm: number[];
  inletC: number;
  accepted: number;
  rejected: number;
  hardwareErrors: number;
  poolAlive: boolean;
  /** Write a firmware typo where the real one has it (`Tenperature`). */
  typo: boolean;
  /** NaN for a percentage divided by zero (rendered `nan` with the non_finite quirk). */
  nonFinite: boolean;
}

export const SIM_FIRMWARE = ['antminer', 'braiins', 'luxos', 'whatsminer', 'cgminer'] as const;
export type SimFirmware = (typeof SIM_FIRMWARE)[number];

type Reply = Record<string, unknown>;

function status(view: MinerView, code: number, msg: string, description: string): Reply['STATUS'] {
  return [{ STATUS: 'S', When: view.nowS, Code: code, Msg: msg, Description: description }];
}

export function errorReply(
  view: Pick<MinerView, 'nowS'>,
  description: string,
  style: 'array' | 'bare',
): Reply {
  if (style === 'bare')
    return { STATUS: 'E', When: view.nowS, Code: 14, Msg: 'invalid cmd', Description: '' };
  return {
    STATUS: [{ STATUS: 'E', When: view.nowS, Code: 14, Msg: 'Invalid command', Description: description }],
    id: 1,
  };
}

const fixed = (n: number, d: number) => Number(n.toFixed(d));

/** What the firmware reports as its hashrate, as the agent must read it back. */
export interface Reported {
  hashrateThs: number;
  powerW?: number;
}

interface FirmwareRenderer {
  /** Joined commands (`summary+pools`) understood. */
  joined: boolean;
  /** How errors come back. */
  errorStyle: 'array' | 'bare';
  /** Quirks the real firmware always has. */
  inherentQuirks: readonly ('nul' | 'missing_comma' | 'trailing_comma')[];
  description: string;
  reported(view: MinerView): Reported;
  commands: Record<string, (view: MinerView) => Reply>;
}

function poolList(view: MinerView): Reply[] {
  const pool = (i: number, accepted: number, rejected: number) => ({
    POOL: i,
    URL: i === 0 ? 'stratum+tcp://btc.pool.example:3333' : 'stratum+tcp://backup.pool.example:3333',
    Status: i === 0 ? (view.poolAlive ? 'Alive' : 'Dead') : 'Alive',
    Priority: i,
    Quota: 1,
    'Long Poll': 'N',
    Getworks: Math.floor(view.elapsedS / 30),
    Accepted: accepted,
    Rejected: rejected,
    Discarded: 0,
    Stale: 0,
    'Get Failures': 0,
    'Remote Failures': 0,
    User: i === 0 ? 'hashwatt.worker1' : 'hashwatt.backup',
    'Last Share Time': view.nowS - 1,
    Diff: '8.19K',
    'Diff1 Shares': 0,
    'Proxy Type': '',
    Proxy: '',
    'Difficulty Accepted': accepted * 8192,
    'Difficulty Rejected': rejected * 8192,
    'Difficulty Stale': 0,
    'Last Share Difficulty': 8192,
    'Has Stratum': true,
    'Stratum Active': i === 0,
    'Stratum URL': i === 0 ? 'btc.pool.example' : '',
    'Best Share': 1_234_567,
    'Pool Rejected%':
      view.nonFinite && accepted === 0
        ? Number.NaN
        : fixed((100 * rejected) / Math.max(1, accepted + rejected), 4),
    'Pool Stale%': 0,
  });
  return [pool(0, view.accepted, view.rejected), pool(1, 0, 0)];
}

function hwPercent(view: MinerView): number {
  if (view.nonFinite) return Number.NaN;
  return fixed((100 * view.hardwareErrors) / Math.max(1, view.accepted * 8192), 4);
}

/** The summary block every cgminer derivative shares, with the hashrate keys given. */
function summaryBlock(view: MinerView, hashrate: Reply): Reply {
  return {
    Elapsed: view.elapsedS,
    ...hashrate,
    'Found Blocks': 0,
    Getworks: Math.floor(view.elapsedS / 30),
    Accepted: view.accepted,
    Rejected: view.rejected,
    'Hardware Errors': view.hardwareErrors,
    Utility: fixed((view.accepted * 60) / Math.max(1, view.elapsedS), 2),
    Discarded: Math.floor(view.elapsedS / 10),
    Stale: 0,
    'Get Failures': 0,
    'Local Work': view.elapsedS * 37,
    'Remote Failures': 0,
    'Network Blocks': Math.floor(view.elapsedS / 600),
    'Total MH': fixed(view.hashrateThs * 1e6 * view.elapsedS, 0),
    'Work Utility': fixed((view.accepted * 8192 * 60) / Math.max(1, view.elapsedS), 2),
    'Difficulty Accepted': view.accepted * 8192,
    'Difficulty Rejected': view.rejected * 8192,
    'Difficulty Stale': 0,
    'Best Share': 1_234_567,
    'Device Hardware%': hwPercent(view),
    'Device Rejected%': fixed((100 * view.rejected) / Math.max(1, view.accepted + view.rejected), 4),
    'Pool Rejected%': fixed((100 * view.rejected) / Math.max(1, view.accepted + view.rejected), 4),
    'Pool Stale%': 0,
    'Last getwork': view.nowS,
  };
}

/** bmminer's `stats` miner block (Antminer stock, LuxOS). */
function antminerStats(view: MinerView, ghs5s: string): Reply {
  const s: Reply = {
    STATS: 0,
    ID: 'BC50',
    Elapsed: view.elapsedS,
    Calls: 0,
    Wait: 0,
    Max: 0,
    Min: 99999999,
    'GHS 5s': ghs5s,
    'GHS av': fixed(view.hashrateThs * 1000, 2),
    miner_count: view.chains.length,
    frequency: '490',
    fan_num: view.fansRpm.length,
  };
  view.fansRpm.forEach((rpm, i) => {
    s[`fan${i + 1}`] = rpm;
  });
  s.temp_num = view.chains.length;
  view.chains.forEach((c, i) => {
    s[`temp${i + 1}`] = Math.round(c.boardC);
  });
  view.chains.forEach((c, i) => {
    s[`temp2_${i + 1}`] = Math.round(c.chipC);
  });
  view.chains.forEach((c, i) => {
    const b = Math.round(c.boardC);
    s[`temp_pcb${i + 1}`] = `${b - 2}-${b - 2}-${b}-${b}`;
  });
  view.chains.forEach((c, i) => {
    const t = Math.round(c.chipC);
    s[`temp_chip${i + 1}`] = `${t - 4}-${t - 4}-${t}-${t}`;
  });
  s.temp_max = Math.max(0, ...view.chains.map((c) => Math.round(c.chipC)));
  s['Device Hardware%'] = hwPercent(view);
  s.no_matching_work = view.hardwareErrors;
  view.chains.forEach((c, i) => {
    s[`chain_acn${i + 1}`] = c.chips;
  });
  view.chains.forEach((c, i) => {
    s[`chain_acs${i + 1}`] = c.chips > 0 ? ' oooooooo oooooooo oooooooo oooooooo' : '';
  });
  view.chains.forEach((c, i) => {
    s[`chain_hw${i + 1}`] = c.hw;
  });
  view.chains.forEach((c, i) => {
    s[`chain_rate${i + 1}`] = (c.rateThs * 1000).toFixed(2);
  });
  view.chains.forEach((_, i) => {
    s[`chain_xtime${i + 1}`] = '{}';
  });
  s.total_rateideal = fixed(view.expectedThs * 1000, 2);
  s.rate_unit = 'GH/s';
  s.total_freqavg = 490;
  s.total_acn = view.chains.reduce((n, c) => n + c.chips, 0);
  s.total_rate = fixed(view.hashrateThs * 1000, 2);
  s.miner_version = '49.0.1.3';
  s.miner_id = '80a8f3c5d4e2b1a0';
  return s;
}

const ANTMINER: FirmwareRenderer = {
  joined: false, // S19-generation stock firmware: "Invalid command" for summary+pools
  errorStyle: 'array',
  inherentQuirks: ['nul', 'missing_comma', 'trailing_comma'],
  description: 'cgminer 1.0.0',
  reported: (v) => ({ hashrateThs: Number((v.hashrateThs * 1000).toFixed(2)) / 1000 }),
  commands: {
    version: (v) => ({
      STATUS: status(v, 22, 'CGMiner versions', 'cgminer 1.0.0'),
      VERSION: [
        {
          BMMiner: '1.0.0',
          API: '3.1',
          Miner: '49.0.1.3',
          CompileTime: 'Mon Jul 10 16:15:20 CST 2023',
          Type: v.type,
        },
      ],
      id: 1,
    }),
    summary: (v) => ({
      STATUS: status(v, 11, 'Summary', 'cgminer 1.0.0'),
      SUMMARY: [
        summaryBlock(v, {
          'GHS 5s': (v.hashrateThs * 1000).toFixed(2),
          'GHS av': fixed(v.hashrateThs * 1000, 2),
          'GHS 30m': fixed(v.hashrateThs * 1000, 2),
        }),
      ],
      id: 1,
    }),
    stats: (v) => ({
      STATUS: status(v, 70, 'CGMiner stats', 'cgminer 1.0.0'),
      STATS: [
        { BMMiner: '1.0.0', Miner: '49.0.1.3', CompileTime: 'Mon Jul 10 16:15:20 CST 2023', Type: v.type },
        antminerStats(v, (v.hashrateThs * 1000).toFixed(2)),
      ],
      id: 1,
    }),
    pools: (v) => ({ STATUS: status(v, 7, `${2} Pool(s)`, 'cgminer 1.0.0'), POOLS: poolList(v), id: 1 }),
  },
};

const LUXOS: FirmwareRenderer = {
  joined: true,
  errorStyle: 'array',
  inherentQuirks: ['nul'],
  description: 'LUXminer 2024.6.24',
  reported: (v) => ({
    hashrateThs: Number((v.hashrateThs * 1000).toFixed(2)) / 1000,
    powerW: Math.round(v.powerW),
  }),
  commands: {
    version: (v) => ({
      STATUS: status(v, 22, 'LUXminer versions', 'LUXminer 2024.6.24'),
      VERSION: [
        { API: '3.7', LUXminer: '2024.6.24.213452-0ca6ff4f', Miner: 'LUXminer 2024.6.24', Type: v.type },
      ],
      id: 1,
    }),
    summary: (v) => ({
      STATUS: status(v, 11, 'Summary', 'LUXminer 2024.6.24'),
      SUMMARY: [
        summaryBlock(v, {
          'GHS 5s': fixed(v.hashrateThs * 1000, 2),
          'GHS av': fixed(v.hashrateThs * 1000, 2),
          'GHS 30m': fixed(v.hashrateThs * 1000, 2),
        }),
      ],
      id: 1,
    }),
    stats: (v) => ({
      STATUS: status(v, 70, 'LUXminer stats', 'LUXminer 2024.6.24'),
      STATS: [
        { LUXminer: '2024.6.24.213452-0ca6ff4f', Type: v.type },
        antminerStats(v, (v.hashrateThs * 1000).toFixed(2)),
      ],
      id: 1,
    }),
    power: (v) => ({
      STATUS: status(v, 339, 'Power', 'LUXminer 2024.6.24'),
      POWER: [{ PSU: true, Watts: Math.round(v.powerW) }],
      id: 1,
    }),
    pools: (v) => ({ STATUS: status(v, 7, '2 Pool(s)', 'LUXminer 2024.6.24'), POOLS: poolList(v), id: 1 }),
  },
};

const mhs = (ths: number) => fixed(ths * 1e6, 2);

const BRAIINS: FirmwareRenderer = {
  joined: true,
  errorStyle: 'array',
  inherentQuirks: [],
  description: 'BOSminer 0.2.0',
  reported: (v) => ({
    hashrateThs: Number((v.hashrateThs * 1e6).toFixed(2)) / 1e6,
    powerW: Math.round(v.powerW),
  }),
  commands: {
    version: (v) => ({
      STATUS: status(v, 22, 'BOSminer versions', 'BOSminer 0.2.0'),
      VERSION: [{ BOSminer: '0.2.0-e8e8d7e1', API: '3.7' }],
      id: 1,
    }),
    summary: (v) => ({
      STATUS: status(v, 11, 'Summary', 'BOSminer 0.2.0'),
      SUMMARY: [
        summaryBlock(v, {
          'MHS av': mhs(v.hashrateThs),
          'MHS 5s': mhs(v.hashrateThs),
          'MHS 1m': mhs(v.hashrateThs),
          'MHS 5m': mhs(v.hashrateThs),
          'MHS 15m': mhs(v.hashrateThs),
        }),
      ],
      id: 1,
    }),
    devs: (v) => ({
      STATUS: status(v, 9, `${v.chains.length} ASC(s)`, 'BOSminer 0.2.0'),
      DEVS: v.chains.map((c, i) => ({
        ASC: i,
        Name: 'BC5',
        ID: i + 1,
        Enabled: 'Y',
        Status: 'Alive',
        Temperature: fixed(c.boardC, 1),
        'MHS av': mhs(c.rateThs),
        'MHS 5s': mhs(c.rateThs),
        'MHS 1m': mhs(c.rateThs),
        'MHS 5m': mhs(c.rateThs),
        'MHS 15m': mhs(c.rateThs),
        Accepted: Math.floor(v.accepted / Math.max(1, v.chains.length)),
        Rejected: 0,
        'Hardware Errors': c.hw,
        'Device Elapsed': v.elapsedS,
      })),
      id: 1,
    }),
    temps: (v) => ({
      STATUS: status(v, 201, `${v.chains.length} Temp(s)`, 'BOSminer 0.2.0'),
      TEMPS: v.chains.map((c, i) => ({
        TEMPS: i,
        ID: i + 1,
        Board: fixed(c.boardC, 1),
        Chip: fixed(c.chipC, 1),
      })),
      id: 1,
    }),
    fans: (v) => ({
      STATUS: status(v, 202, `${v.fansRpm.length} Fan(s)`, 'BOSminer 0.2.0'),
      FANS: v.fansRpm.map((rpm, i) => ({ FANS: i, ID: i, RPM: rpm, Speed: Math.round((rpm / 6600) * 100) })),
      id: 1,
    }),
    tunerstatus: (v) => ({
      STATUS: status(v, 203, 'Tuner Status', 'BOSminer 0.2.0'),
      TUNERSTATUS: [
        {
          ApproximateChainPowerConsumption: Math.round(v.powerW * 0.9),
          ApproximateMinerPowerConsumption: Math.round(v.powerW),
          DynamicPowerScaling: 'Disabled',
          PowerLimit: v.powerLimitW,
          TunerChainStatus: v.chains.map((_, i) => ({
            HashchainIndex: i + 1,
            Iteration: 0,
            LoadedProfile: true,
            PowerLimitWatt: Math.round(v.powerLimitW / Math.max(1, v.chains.length)),
            Status: 'Tuning individual chips',
          })),
        },
      ],
      id: 1,
    }),
    devdetails: (v) => ({
      STATUS: status(v, 69, 'Device Details', 'BOSminer 0.2.0'),
      DEVDETAILS: v.chains.map((c, i) => ({
        DEVDETAILS: i,
        Name: 'BC5',
        ID: i + 1,
        Driver: 'bitmain',
        Kernel: '',
        Model: v.type,
        'Device Path': '',
        Chips: c.chips,
        Frequency: 490,
        Voltage: 13.2,
      })),
      id: 1,
    }),
    pools: (v) => ({ STATUS: status(v, 7, '2 Pool(s)', 'BOSminer 0.2.0'), POOLS: poolList(v), id: 1 }),
  },
};

const WHATSMINER: FirmwareRenderer = {
  joined: false,
  errorStyle: 'bare',
  inherentQuirks: [],
  description: 'whatsminer v1.1',
  reported: (v) => ({
    hashrateThs: Number((v.hashrateThs * 1e6).toFixed(2)) / 1e6,
    powerW: Math.round(v.powerW),
  }),
  commands: {
    version: (v) => ({
      STATUS: 'S',
      When: v.nowS,
      Code: 131,
      Msg: { api_ver: '2.0.5', fw_ver: '20230911.22.REL', platform: 'H616', chip: 'K88Z103' },
      Description: 'whatsminer v1.1',
    }),
    summary: (v) => ({
      STATUS: status(v, 11, 'Summary', 'btminer'),
      SUMMARY: [
        {
          Elapsed: v.elapsedS,
          'MHS av': mhs(v.hashrateThs),
          'MHS 5s': mhs(v.hashrateThs),
          'MHS 1m': mhs(v.hashrateThs),
          'MHS 5m': mhs(v.hashrateThs),
          'MHS 15m': mhs(v.hashrateThs),
          'HS RT': mhs(v.hashrateThs),
          Accepted: v.accepted,
          Rejected: v.rejected,
          'Total MH': fixed(v.hashrateThs * 1e6 * v.elapsedS, 0),
          Temperature: fixed(Math.max(...v.chains.map((c) => c.boardC), 0), 2),
          freq_avg: 611,
          'Fan Speed In': v.fansRpm[0] ?? 0,
          'Fan Speed Out': v.fansRpm[1] ?? 0,
          Power: Math.round(v.powerW),
          'Power Rate': fixed(v.powerW / Math.max(0.001, v.hashrateThs), 2),
          'Pool Rejected%': fixed((100 * v.rejected) / Math.max(1, v.accepted + v.rejected), 4),
          'Pool Stale%': 0,
          Uptime: v.elapsedS + 120,
          'Hash Stable': true,
          'Hash Stable Cost Seconds': 1200,
          'Hash Deviation%': 0.12,
          'Target Freq': 611,
          'Target MHS': mhs(v.expectedThs),
          'Env Temp': fixed(v.inletC, 2),
          'Power Mode': 'Normal',
          'Factory GHS': Math.round(v.expectedThs * 1000),
          'Power Limit': v.powerLimitW,
          'Chip Temp Min': fixed(Math.min(...v.chains.map((c) => c.chipC - 6), 99), 2),
          'Chip Temp Max': fixed(Math.max(...v.chains.map((c) => c.chipC), 0), 2),
          'Chip Temp Avg': fixed(Math.max(...v.chains.map((c) => c.chipC - 3), 0), 2),
          Debug: '-0.0_100.0_0',
          'Btminer Fast Boot': 'disable',
        },
      ],
      id: 1,
    }),
    devs: (v) => ({
      STATUS: status(v, 9, `${v.chains.length} ASC(s)`, 'btminer'),
      DEVS: v.chains.map((c, i) => ({
        ASC: i,
        Slot: i,
        Enabled: 'Y',
        Status: 'Alive',
        Temperature: fixed(c.boardC, 2),
        'Chip Frequency': 611,
        'MHS av': mhs(c.rateThs),
        'MHS 5s': mhs(c.rateThs),
        'MHS 1m': mhs(c.rateThs),
        'MHS 5m': mhs(c.rateThs),
        'MHS 15m': mhs(c.rateThs),
        'Factory GHS': Math.round((v.expectedThs * 1000) / Math.max(1, v.chains.length)),
        'Upfreq Complete': 1,
        'Effective Chips': c.chips,
        'PCB SN': `HEM3B${1000 + i}`,
        'Chip Temp Min': fixed(c.chipC - 6, 2),
        'Chip Temp Max': fixed(c.chipC, 2),
        'Chip Temp Avg': fixed(c.chipC - 3, 2),
        chip_vol_diff: 8,
      })),
      id: 1,
    }),
    devdetails: (v) => ({
      STATUS: status(v, 69, 'Device Details', 'btminer'),
      DEVDETAILS: v.chains.map((_, i) => ({
        DEVDETAILS: i,
        Name: 'SM',
        ID: i,
        Driver: 'bitmicro',
        Kernel: '',
        Model: v.type,
      })),
      id: 1,
    }),
    pools: (v) => ({ STATUS: status(v, 7, '2 Pool(s)', 'btminer'), POOLS: poolList(v), id: 1 }),
  },
};

const CGMINER: FirmwareRenderer = {
  joined: true,
  errorStyle: 'array',
  inherentQuirks: ['nul'],
  description: 'cgminer 4.11.1',
  reported: (v) => ({ hashrateThs: Number((v.hashrateThs * 1e6).toFixed(2)) / 1e6 }),
  commands: {
    version: (v) => ({
      STATUS: status(v, 22, 'CGMiner versions', 'cgminer 4.11.1'),
      VERSION: [{ CGMiner: '4.11.1', API: '3.7', Type: v.type }],
      id: 1,
    }),
    summary: (v) => ({
      STATUS: status(v, 11, 'Summary', 'cgminer 4.11.1'),
      SUMMARY: [
        summaryBlock(v, {
          'MHS av': mhs(v.hashrateThs),
          'MHS 5s': mhs(v.hashrateThs),
          'MHS 1m': mhs(v.hashrateThs),
          'MHS 5m': mhs(v.hashrateThs),
          'MHS 15m': mhs(v.hashrateThs),
        }),
      ],
      id: 1,
    }),
    devs: (v) => ({
      STATUS: status(v, 9, `${v.chains.length} ASC(s)`, 'cgminer 4.11.1'),
      DEVS: v.chains.map((c, i) => ({
        ASC: i,
        Name: 'AVA10',
        ID: i,
        Enabled: 'Y',
        Status: 'Alive',
        [v.typo ? 'Tenperature' : 'Temperature']: fixed(c.chipC, 2),
        'MHS av': mhs(c.rateThs),
        'MHS 5s': mhs(c.rateThs),
        'MHS 1m': mhs(c.rateThs),
        Accepted: 0,
        Rejected: 0,
        'Hardware Errors': c.hw,
      })),
      id: 1,
    }),
    pools: (v) => ({ STATUS: status(v, 7, '2 Pool(s)', 'cgminer 4.11.1'), POOLS: poolList(v), id: 1 }),
  },
};

export const FIRMWARE_RENDERERS: Readonly<Record<SimFirmware, FirmwareRenderer>> = {
  antminer: ANTMINER,
  braiins: BRAIINS,
  luxos: LUXOS,
  whatsminer: WHATSMINER,
  cgminer: CGMINER,
};
