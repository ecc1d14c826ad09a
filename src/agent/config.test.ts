import { describe, expect, it } from 'vitest';
import { AgentConfigError, parseAgentConfig } from './config.ts';

const parse = (text: string, env: Record<string, string> = {}, files: Record<string, string> = {}) =>
  parseAgentConfig(text, {
    source: '/etc/hashwatt/site.yaml',
    env,
    readFile: (f) => {
      if (!(f in files)) throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
      return files[f]!;
    },
  });

const problems = (text: string, env: Record<string, string> = {}) => {
  try {
    parse(text, env);
  } catch (error) {
    if (error instanceof AgentConfigError) return error.message.split('\n');
    throw error;
  }
  throw new Error('expected the file to be refused');
};

const MINIMAL = `
hashwatt: { url: "https://hashwatt.example.com", token: "\${SITE_TOKEN}" }
miners:
  - range: 10.0.1.0/30
    name: "hall-a/{ip}"
  - address: 10.0.2.7
    api: whatsminer-v3
    port: 14433
    expected_hashrate_ths: 186
meters:
  - name: main-meter
    host: 10.0.0.50
    model: eastron-sdm630
    available_power_w: 4800000
gpus:
  - { name: node-001, dcgm: "http://10.0.3.1:9400/metrics" }
  - { name: node-002, nvidia_smi: [ssh, node-002, nvidia-smi], interval_s: 30 }
`;

describe('site.yaml', () => {
  it('resolves every target with its schedule, defaults and paths relative to the file', () => {
    const c = parse(MINIMAL, { SITE_TOKEN: 'tok-123' });
    expect(c).toMatchObject({
      url: 'https://hashwatt.example.com',
      token: 'tok-123',
      transport: 'ws',
      spool: { dir: '/etc/hashwatt/spool', maxBytes: 1024 ** 3, syncIntervalMs: 200 },
      health: { listen: { host: '127.0.0.1', port: 9108 }, perTarget: true },
      concurrency: 512,
      connectTimeoutMs: 2000,
    });
    expect(c.targets.map((t) => t.id)).toEqual([
      'miner:hall-a/10.0.1.1',
      'miner:hall-a/10.0.1.2',
      'miner:miner-10.0.2.7-14433',
      'meter:main-meter',
      'gpu:node-001',
      'gpu:node-002',
    ]);
    expect(c.targets[2]).toMatchObject({
      api: 'whatsminer-v3',
      port: 14433,
      expectedHashrateThs: 186,
      intervalMs: 10_000,
      timeoutMs: 5000,
    });
    expect(c.targets[3]).toMatchObject({
      type: 'meter',
      port: 502,
      unitId: 1,
      kind: 'meter',
      availablePowerW: 4.8e6,
      intervalMs: 5000,
      timeoutMs: 3000,
    });
    expect(c.targets[5]).toMatchObject({
      source: 'nvidia-smi',
      command: ['ssh', 'node-002', 'nvidia-smi'],
      intervalMs: 30_000,
    });
    expect(c.minerAddresses).toEqual(['10.0.1.0/30', '10.0.2.7']);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('reads the token from a file and sizes in units', () => {
    const c = parse(
      'hashwatt: { url: "http://h:8080", token_file: token }\nspool: { max_bytes: 512MiB, dir: /var/lib/agent }\nmeters: [{ name: m, host: h, registers: { word_order: little, fields: [{ metric: power_w, address: 40, type: i32, scale: 0.1, unit: W }] } }]',
      {},
      { '/etc/hashwatt/token': 'secret\n' },
    );
    expect(c.token).toBe('secret');
    expect(c.spool).toMatchObject({ dir: '/var/lib/agent', maxBytes: 512 * 1024 ** 2 });
    expect(c.targets[0]).toMatchObject({
      model: 'custom',
      map: { wordOrder: 'little', function: 'holding', fields: [{ address: 40, scale: 0.1 }] },
    });
  });

  it('names every problem with its field, one line each', () => {
    const lines = problems(`
hashwatt: { url: "ftp://x", token: "t" }
miners:
  - range: 10.0.1.0/33
  - { address: 10.0.1.5, port: 4029 }
  - { range: 10.0.2.1-3, name: same }
meters:
  - { name: m, host: h, model: acme-9000 }
  - { name: p, host: h, registers: { fields: [{ metric: energy_j_total, address: 1, type: u32, unit: kW }] } }
gpus:
  - { name: g }
bogus: 1
`);
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^site\.yaml: hashwatt\.url: /),
        expect.stringMatching(/^site\.yaml: miners\[1\]\.port: a port needs the api named/),
        expect.stringMatching(/^site\.yaml: meters\[0\]\.model: unknown meter model/),
        expect.stringMatching(/^site\.yaml: gpus\[0\]: give either dcgm or nvidia_smi/),
        expect.stringMatching(/^site\.yaml: \(file\): Unrecognized key: "bogus"/),
      ]),
    );
    const later = problems(`
hashwatt: { url: "http://x", token: "t" }
miners:
  - range: 10.0.1.0/33
  - { range: 10.0.2.1-3, name: same }
  - { address: 10.0.3.1, name: m }
  - { address: 10.0.3.2, name: m }
meters:
  - { name: p, host: h, registers: { fields: [{ metric: energy_j_total, address: 1, type: u32, unit: kW }] } }
`);
    expect(later).toEqual(
      expect.arrayContaining([
        expect.stringContaining('miners[0].range: "10.0.1.0/33" is not an IPv4 network'),
        expect.stringContaining('miners[1].name: a range needs {ip} or {i}'),
        expect.stringContaining('miners[3]: device name "m" is also miners[2]\'s'),
        expect.stringContaining('meters[0].registers.fields[0].unit: kW does not measure energy_j_total'),
      ]),
    );
  });

  it('refuses an unset environment variable and a file with nothing to poll', () => {
    expect(
      problems(`hashwatt: { url: "http://x", token: "\${NOPE}" }\nminers: [{ address: 1.2.3.4 }]`),
    ).toEqual([`site.yaml: hashwatt.token: \${NOPE} is not set in the environment`]);
    expect(problems('hashwatt: { url: "http://x", token: t }')).toEqual([
      'site.yaml: no miners, meters or gpus: nothing to poll',
    ]);
    expect(problems('hashwatt: [')[0]).toMatch(/^site\.yaml: not YAML/);
  });
});
