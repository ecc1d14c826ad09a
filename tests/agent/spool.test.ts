import { spawn } from 'node:child_process';
import {
  appendFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type SpoolOptions, SpoolStore } from '../../src/agent/spool.ts';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'hashwatt-spool-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const reading = (i: number) =>
  JSON.stringify({
    device: 'hall-a/r01/s21-001',
    kind: 'asic',
    ts: 1_767_225_600_000 + i,
    hashrate_ths: 200.5,
  });
const tsOf = (json: string) => (JSON.parse(json) as { ts: number }).ts - 1_767_225_600_000;

const open = (over: Partial<SpoolOptions> = {}) =>
  SpoolStore.open({
    dir,
    maxBytes: 10 * 1024 * 1024,
    maxBatchReadings: 50,
    maxBatchBytes: 1 << 20,
    segmentBytes: 8 * 1024,
    ...over,
  });

/** Takes every batch and acknowledges it; the readings' numbers in the order sent. */
function deliverAll(spool: SpoolStore): number[] {
  const sent: number[] = [];
  for (let b = spool.takeNext(); b; b = spool.takeNext()) {
    sent.push(...b.readings.map(tsOf));
    spool.complete(b);
  }
  return sent;
}

const segmentFiles = () => readdirSync(dir).filter((f) => f.endsWith('.seg'));

describe('the disk spool', () => {
  it('keeps what was not acknowledged across a restart, in order, and skips what was', async () => {
    const a = open();
    for (let i = 0; i < 1000; i++) a.add(reading(i));
    expect(segmentFiles().length).toBeGreaterThan(3);
    const acked: number[] = [];
    for (let k = 0; k < 4; k++) {
      const batch = a.takeNext()!;
      acked.push(...batch.readings.map(tsOf));
      a.complete(batch);
    }
    const inFlight = a.takeNext()!; // sent, never answered: must come back
    expect(inFlight.readings).toHaveLength(50);
    await a.close();

    const b = open();
    expect(b.stats()).toMatchObject({ recovered: 800, readings: 800, tornRecords: 0 });
    const sent = deliverAll(b);
    expect(sent).toEqual(Array.from({ length: 800 }, (_, i) => i + 200));
    expect(acked).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(b.size).toBe(0);
    await b.close();
    // Everything acknowledged: the segments are gone but the open one.
    expect(segmentFiles().length).toBeLessThanOrEqual(1);
    const c = open();
    expect(c.stats().recovered).toBe(0);
    await c.close();
  });

  it('cuts off a record torn by a crash and keeps the ones before it', async () => {
    const a = open({ segmentBytes: 1 << 20 });
    for (let i = 0; i < 100; i++) a.add(reading(i));
    await a.close();
    const [file] = segmentFiles();
    const whole = statSync(path.join(dir, file!)).size;
    appendFileSync(path.join(dir, file!), Buffer.from([0x40, 0, 0, 0, 1, 2, 3])); // a header and a few bytes
    const b = open({ segmentBytes: 1 << 20 });
    expect(b.stats()).toMatchObject({ recovered: 100, tornRecords: 1 });
    expect(statSync(path.join(dir, file!)).size).toBe(whole);
    expect(deliverAll(b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    await b.close();
  });

  it('a record whose checksum does not match ends the segment there', async () => {
    const a = open({ segmentBytes: 1 << 20 });
    for (let i = 0; i < 10; i++) a.add(reading(i));
    await a.close();
    const file = path.join(dir, segmentFiles()[0]!);
    const bytes = readFileSync(file);
    const recordBytes = 8 + Buffer.byteLength(reading(0));
    bytes[recordBytes * 5 + 20]! ^= 0xff; // flip a byte inside the sixth payload
    writeFileSync(file, bytes);
    const b = open({ segmentBytes: 1 << 20 });
    expect(b.stats()).toMatchObject({ recovered: 5, tornRecords: 1 });
    expect(deliverAll(b)).toEqual([0, 1, 2, 3, 4]);
    await b.close();
  });

  it('when full, drops the oldest segments not in flight, counts them, and keeps the bound', async () => {
    const a = open({ maxBytes: 64 * 1024, segmentBytes: 8 * 1024, memoryReadings: 100 });
    const inFlight = a.takeNext(); // nothing yet
    expect(inFlight).toBeUndefined();
    for (let i = 0; i < 50; i++) a.add(reading(i));
    const held = a.takeNext()!; // the first 50, in flight while the spool overflows
    let dropped = 0;
    for (let i = 50; i < 3000; i++) dropped += a.add(reading(i));
    expect(dropped).toBeGreaterThan(1000);
    expect(a.dropped).toBe(dropped);
    // Within the bound, but for the segment the in-flight batch pins.
    expect(a.bytes).toBeLessThanOrEqual(64 * 1024 + 8 * 1024 + 200);
    expect(a.size).toBe(3000 - dropped);
    a.complete(held);
    const rest = deliverAll(a);
    expect(held.readings.map(tsOf)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    // What survived is the newest, in order, nothing twice.
    expect(rest).toEqual([...rest].sort((x, y) => x - y));
    expect(new Set(rest).size).toBe(rest.length);
    expect(rest.at(-1)).toBe(2999);
    expect(50 + rest.length + dropped).toBe(3000);
    await a.close();
  });

  it('holds only a window in memory and reads the rest back from disk, oldest first', async () => {
    const a = open({ memoryReadings: 200, segmentBytes: 32 * 1024 });
    for (let i = 0; i < 10_000; i++) a.add(reading(i));
    expect(a.size).toBe(10_000);
    expect(deliverAll(a)).toEqual(Array.from({ length: 10_000 }, (_, i) => i));
    await a.close();
  });

  it('makes what it wrote durable (fdatasync) and says so', async () => {
    const a = open();
    for (let i = 0; i < 300; i++) a.add(reading(i));
    expect(a.stats().durable).toBe(0);
    await a.sync();
    expect(a.stats()).toMatchObject({ appended: 300, durable: 300 });
    await a.close();
  });

  it('loses nothing it had taken when the process is killed with SIGKILL', async () => {
    const child = spawn(process.execPath, [path.join(import.meta.dirname, 'fixtures/spool-writer.ts'), dir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let reported = 0;
    let buffered = '';
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        const lines = buffered.split('\n');
        buffered = lines.pop()!;
        for (const l of lines) reported = Number(l);
        if (reported >= 20_000) resolve();
      });
    });
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    const b = open({ maxBytes: 64 * 1024 * 1024, segmentBytes: 64 * 1024 });
    const recovered = b.stats().recovered;
    expect(recovered).toBeGreaterThanOrEqual(reported);
    const sent = deliverAll(b);
    expect(sent).toEqual(Array.from({ length: recovered }, (_, i) => i));
    await b.close();
  });
});
