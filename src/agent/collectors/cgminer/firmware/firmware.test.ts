import { describe, expect, it } from 'vitest';
import { minerReading } from '../../miner-reading.ts';
import type { Json } from '../../values.ts';
import { describeV3Device, mapV3Replies } from '../../whatsminer-v3.ts';
import { parseCgminerReply } from '../repair.ts';
import { ANTMINER, BRAIINS, CGMINER, identifyFirmware, LUXOS, WHATSMINER } from './index.ts';

/** A reply as firmware prints it, through the same repair the agent applies. */
function reply(text: string): Json {
  const r = parseCgminerReply(text);
  if (!r.ok) throw new Error(r.message);
  return r.value as Json;
}

const S = (cmd: string, payload: string) =>
  `{"STATUS":[{"STATUS":"S","When":1767225600,"Code":11,"Msg":"${cmd}"}],${payload},"id":1}`;

describe('firmware identification from `version`', () => {
  it('names each firmware from its version block', () => {
    const cases: [string, string][] = [
      [
        S('v', '"VERSION":[{"BMMiner":"1.0.0","API":"3.1","Miner":"49.0.1.3","Type":"Antminer S19j Pro"}]'),
        'antminer',
      ],
      [S('v', '"VERSION":[{"CGMiner":"4.9.2","API":"3.7","Type":"Antminer S21"}]'), 'antminer'],
      [S('v', '"VERSION":[{"BOSminer":"0.2.0-e8e8d7e1","API":"3.7"}]'), 'braiins'],
      [
        S('v', '"VERSION":[{"API":"3.7","LUXminer":"2024.6.24.213452-0ca6ff4f","Type":"Antminer S19 XP"}]'),
        'luxos',
      ],
      [
        '{"STATUS":"S","When":1,"Code":131,"Msg":{"api_ver":"2.0.5","fw_ver":"20230911.22.REL"},"Description":""}',
        'whatsminer',
      ],
      [S('v', '"VERSION":[{"CGMiner":"4.11.1","API":"3.7"}]'), 'cgminer'],
    ];
    for (const [text, name] of cases) expect(identifyFirmware(reply(text)).name, text).toBe(name);
    expect(identifyFirmware(undefined).name).toBe('cgminer');
  });

  it('reads model and firmware version', () => {
    expect(
      ANTMINER.describe(reply(S('v', '"VERSION":[{"BMMiner":"1.0.0","Type":"Antminer S19j Pro"}]'))),
    ).toEqual({
      model: 'S19j Pro',
      version: '1.0.0',
    });
    expect(
      LUXOS.describe(reply(S('v', '"VERSION":[{"LUXminer":"2024.6","Type":"Antminer S19 XP"}]'))),
    ).toEqual({
      model: 'S19 XP',
      version: '2024.6',
    });
  });
});

describe('Antminer stock (bmminer)', () => {
  const summary = reply(
    S(
      'Summary',
      '"SUMMARY":[{"Elapsed":86400,"GHS 5s":"104012.34","GHS av":103800.12,"Accepted":182734,"Rejected":71,"Hardware Errors":12,"Device Hardware%":nan}]',
    ),
  );
  const stats = reply(
    `${S('CGMiner stats', '"STATS":[{"BMMiner":"1.0.0","Type":"Antminer S19j Pro"}{"STATS":0,"ID":"BC50","fan_num":4,"fan1":5400,"fan2":5460,"fan3":0,"fan4":5420,"temp_num":3,"temp1":58,"temp2":59,"temp3":57,"temp2_1":73,"temp2_2":74,"temp2_3":72,"chain_acn1":126,"chain_acn2":126,"chain_acn3":126,"chain_hw1":4,"chain_hw2":0,"chain_hw3":8,"chain_rate1":"34600.12","chain_rate2":"34700.00","chain_rate3":"34712.22","total_rateideal":104000.00,"rate_unit":"GH/s",}]')}\0`,
  );

  it('maps summary and stats: GH/s to TH/s, chains in order, a stopped fan kept at 0 rpm', () => {
    const snapshot = ANTMINER.map(
      new Map([
        ['summary', summary],
        ['stats', stats],
      ]),
    );
    expect(snapshot.hashrateThs).toBe(104.01234);
    expect(snapshot.expectedHashrateThs).toBe(104);
    // Per-chain rates are divided as the firmware printed them; the reading rounds to 6 decimals.
    expect(snapshot.chains).toEqual([
      {
        hashrateThs: expect.closeTo(34.60012, 9),
        chips: 126,
        chipTempC: 73,
        boardTempC: 58,
        hardwareErrors: 4,
      },
      { hashrateThs: expect.closeTo(34.7, 9), chips: 126, chipTempC: 74, boardTempC: 59, hardwareErrors: 0 },
      {
        hashrateThs: expect.closeTo(34.71222, 9),
        chips: 126,
        chipTempC: 72,
        boardTempC: 57,
        hardwareErrors: 8,
      },
    ]);
    expect(snapshot.fansRpm).toEqual([5400, 5460, 0, 5420]);
    expect(snapshot).toMatchObject({ sharesAccepted: 182734, sharesRejected: 71, hardwareErrors: 12 });
    expect(snapshot.powerW).toBeUndefined(); // stock firmware reports no power
  });

  it('reads the newer four-sensor strings and MH/s rate units', () => {
    const s = reply(
      S(
        'stats',
        '"STATS":[{"Type":"Antminer S21"},{"fan_num":2,"fan1":3000,"fan2":3100,"temp_pcb1":"40-40-55-56","temp_chip1":"45-45-71-70","chain_acn1":108,"chain_rate1":"66000000.5","rate_unit":"MH/s","total_rateideal":200000000}]',
      ),
    );
    const snapshot = ANTMINER.map(new Map([['stats', s]]));
    expect(snapshot.chains).toEqual([{ hashrateThs: 66.0000005, chips: 108, chipTempC: 71, boardTempC: 56 }]);
    expect(snapshot.expectedHashrateThs).toBe(200);
  });

  it("keeps an S9's chains 6, 7, 8 as hashboards 0, 1, 2 and its fans 3 and 6", () => {
    const s = reply(
      S(
        'stats',
        '"STATS":[{"Type":"Antminer S9"},{"fan_num":2,"fan1":0,"fan2":0,"fan3":5880,"fan4":0,"fan5":0,"fan6":6000,"fan7":0,"fan8":0,"chain_acn6":63,"chain_acn7":63,"chain_acn8":0,"chain_rate6":"4700.1","chain_rate7":"4699.9","chain_rate8":"","temp2_6":80,"temp2_7":81}]',
      ),
    );
    const snapshot = ANTMINER.map(new Map([['stats', s]]));
    expect(snapshot.chains.map((c) => c.hashrateThs)).toEqual([
      expect.closeTo(4.7001, 9),
      expect.closeTo(4.6999, 9),
    ]);
    expect(snapshot.fansRpm).toEqual([5880, 6000]);
  });

  it('reads the new_api chain[] form', () => {
    const s = reply(
      S(
        'stats',
        '"STATS":[{"chain":[{"index":0,"rate_real":66012.5,"asic_num":108,"temp_pcb":[40,41,55,56],"temp_chip":[60,61,70,71],"hw":3}],"fan":[4800,4860],"rate_unit":"GH/s","rate_ideal":200000}]',
      ),
    );
    const snapshot = ANTMINER.map(new Map([['stats', s]]));
    expect(snapshot.chains).toEqual([
      { hashrateThs: 66.0125, chips: 108, chipTempC: 71, boardTempC: 56, hardwareErrors: 3 },
    ]);
    expect(snapshot.fansRpm).toEqual([4800, 4860]);
  });

  it('makes a reading in catalog units, hottest sensor as temp_c, hashboards and fans indexed from 0', () => {
    const snapshot = ANTMINER.map(
      new Map([
        ['summary', summary],
        ['stats', stats],
      ]),
    );
    const reading = minerReading('hall-a/r01/s19jpro-001', 1_767_225_600_000, {
      ...snapshot,
      model: 'S19j Pro',
    });
    expect(reading).toMatchObject({
      kind: 'asic',
      model: 'S19j Pro',
      status: 'ok',
      hashrate_ths: 104.01234,
      expected_hashrate_ths: 104,
      temp_c: 74,
      fan_rpm: 4070,
      extras: {
        chip_temp_c: { 0: 73, 1: 74, 2: 72 },
        board_temp_c: { 0: 58, 1: 59, 2: 57 },
        fan_speed_rpm: { 0: 5400, 1: 5460, 2: 0, 3: 5420 },
        shares_accepted_total: 182734,
        shares_rejected_total: 71,
        hardware_errors_total: { '': 12, 0: 4, 1: 0, 2: 8 },
      },
    });
  });
});

describe('Braiins OS, LuxOS, Whatsminer V2, generic cgminer', () => {
  it('Braiins: MH/s summary, per-board devs and temps, fans, tuner power and limit, model from devdetails', () => {
    const snapshot = BRAIINS.map(
      new Map([
        [
          'summary',
          reply(
            S(
              'Summary',
              '"SUMMARY":[{"MHS 1m":104012345.67,"MHS 5s":99000000,"Accepted":10,"Rejected":1,"Hardware Errors":2}]',
            ),
          ),
        ],
        [
          'devs',
          reply(
            S(
              'devs',
              '"DEVS":[{"ASC":0,"ID":1,"MHS 1m":34000000,"Hardware Errors":1},{"ASC":1,"ID":2,"MHS 1m":35000000,"Hardware Errors":1}]',
            ),
          ),
        ],
        [
          'temps',
          reply(
            S(
              'temps',
              '"TEMPS":[{"TEMPS":0,"ID":1,"Board":55.5,"Chip":70.25},{"TEMPS":1,"ID":2,"Board":56,"Chip":71}]',
            ),
          ),
        ],
        [
          'fans',
          reply(
            S(
              'fans',
              '"FANS":[{"FANS":0,"ID":0,"RPM":4860,"Speed":70},{"FANS":1,"ID":1,"RPM":4920,"Speed":70}]',
            ),
          ),
        ],
        [
          'tunerstatus',
          reply(S('tuner', '"TUNERSTATUS":[{"ApproximateMinerPowerConsumption":3251,"PowerLimit":3300}]')),
        ],
        [
          'devdetails',
          reply(
            S(
              'dd',
              '"DEVDETAILS":[{"DEVDETAILS":0,"Model":"Antminer S19j Pro","Chips":126},{"DEVDETAILS":1,"Model":"Antminer S19j Pro","Chips":126}]',
            ),
          ),
        ],
      ]),
    );
    expect(snapshot).toMatchObject({
      hashrateThs: 104.01234567,
      powerW: 3251,
      powerLimitW: 3300,
      model: 'S19j Pro',
      fansRpm: [4860, 4920],
      chains: [
        { hashrateThs: 34, chipTempC: 70.25, boardTempC: 55.5, hardwareErrors: 1, chips: 126 },
        { hashrateThs: 35, chipTempC: 71, boardTempC: 56, hardwareErrors: 1, chips: 126 },
      ],
    });
  });

  it('LuxOS: power from POWER[0].Watts', () => {
    const snapshot = LUXOS.map(
      new Map([
        ['summary', reply(S('Summary', '"SUMMARY":[{"GHS 5s":140000.5}]'))],
        ['power', reply(S('Power', '"POWER":[{"PSU":true,"Watts":3010}]'))],
      ]),
    );
    expect(snapshot).toMatchObject({ hashrateThs: 140.0005, powerW: 3010 });
  });

  it('Whatsminer V2: Power, Power Limit, Factory GHS, Env Temp, fans in and out, devs per board, model', () => {
    const snapshot = WHATSMINER.map(
      new Map([
        [
          'summary',
          reply(
            S(
              'Summary',
              '"SUMMARY":[{"MHS 1m":186543210.12,"Power":3441,"Power Limit":3600,"Factory GHS":186000,"Env Temp":24.5,"Fan Speed In":4200,"Fan Speed Out":4260,"Accepted":5,"Rejected":0}]',
            ),
          ),
        ],
        [
          'devs',
          reply(
            S(
              'devs',
              '"DEVS":[{"Slot":0,"Temperature":60.5,"Chip Temp Max":79.2,"MHS 1m":62000000,"Effective Chips":111}]',
            ),
          ),
        ],
        ['devdetails', reply(S('dd', '"DEVDETAILS":[{"DEVDETAILS":0,"Name":"SM","Model":"M60S.VK30"}]'))],
      ]),
    );
    expect(snapshot).toMatchObject({
      hashrateThs: 186.54321012,
      expectedHashrateThs: 186,
      powerW: 3441,
      powerLimitW: 3600,
      inletTempC: 24.5,
      fansRpm: [4200, 4260],
      model: 'M60S',
      chains: [{ hashrateThs: 62, chipTempC: 79.2, boardTempC: 60.5, chips: 111 }],
    });
  });

  it("generic cgminer: devs' Temperature, and the one firmware's Tenperature", () => {
    const snapshot = CGMINER.map(
      new Map([
        ['summary', reply(S('Summary', '"SUMMARY":[{"MHS av":90000000}]'))],
        ['devs', reply(S('devs', '"DEVS":[{"ASC":0,"Temperature":66.5},{"ASC":1,"Tenperature":67.5}]'))],
      ]),
    );
    expect(snapshot.chains.map((c) => c.chipTempC)).toEqual([66.5, 67.5]);
    expect(snapshot.hashrateThs).toBe(90);
  });

  it('a miner with pools configured and none alive is in error: it cannot submit work', () => {
    const pools = reply(S('pools', '"POOLS":[{"POOL":0,"Status":"Dead"},{"POOL":1,"Status":"Dead"}]'));
    const snapshot = ANTMINER.map(
      new Map([
        ['summary', reply(S('s', '"SUMMARY":[{"GHS 5s":0}]'))],
        ['pools', pools],
      ]),
    );
    expect(minerReading('m', 1, snapshot).status).toBe('error');
  });
});

describe('Whatsminer API V3 replies', () => {
  it('maps summary (TH/s), edevs and pools; model and firmware from get.device.info', () => {
    const snapshot = mapV3Replies(
      {
        code: 0,
        msg: {
          summary: {
            'hash-realtime': 186.54,
            'factory-hash': 186,
            'power-realtime': 3441,
            'power-limit': 3600,
            'environment-temperature': 24.5,
            'fan-speed-in': 4200,
            'fan-speed-out': 4260,
          },
        },
      },
      {
        code: 0,
        msg: {
          edevs: [
            {
              id: 0,
              'hash-average': 62.1,
              'chip-temp-max': 79,
              'pcb-temperature': 60,
              'effective-chips': 111,
            },
          ],
        },
      },
      {
        code: 0,
        msg: {
          pools: [
            { id: 1, status: 'alive', accepted: 100, rejected: 2 },
            { id: 2, status: 'dead', accepted: 5, rejected: 0 },
          ],
        },
      },
    );
    expect(snapshot).toMatchObject({
      hashrateThs: 186.54,
      expectedHashrateThs: 186,
      powerW: 3441,
      powerLimitW: 3600,
      inletTempC: 24.5,
      fansRpm: [4200, 4260],
      chains: [{ hashrateThs: 62.1, chipTempC: 79, boardTempC: 60, chips: 111 }],
      sharesAccepted: 105,
      sharesRejected: 2,
      pools: 2,
      poolsAlive: 1,
    });
    expect(
      describeV3Device({
        code: 0,
        msg: { miner: { type: 'M60S.VK30' }, system: { fwversion: '20241107.22.REL' } },
      }),
    ).toEqual({
      model: 'M60S',
      version: '20241107.22.REL',
    });
  });
});
