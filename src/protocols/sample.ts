/**
 * The protocol-neutral output of every push decoder (Prometheus remote_write, InfluxDB line
 * protocol, OTLP): samples, per-item problems and counts of what had no mapping. Decoders are pure
 * (no I/O, no clock: the receive time is passed in) and never throw; the transport edge turns a
 * result into its protocol's answer (remote_write status, InfluxDB 422 naming the first bad line,
 * OTLP partial success).
 */
import type { DeviceKind } from '../catalog/index.ts';

/** One value of one metric of one device at one instant, as a protocol delivered it. */
export interface DecodedSample {
  /** External device id, e.g. "gpu-node-07/gpu3". */
  device: string;
  kind?: DeviceKind;
  model?: string;
  /** A hashwatt metric name: a core catalog name or one of src/catalog/extra-metrics.ts. */
  metric: string;
  /** Small index label where the hardware has several: hashboard, fan, NVLink link. */
  index?: string;
  /** Milliseconds since the epoch: Math.floor(tsUs / 1000). */
  tsMs: number;
  /**
   * Microseconds since the epoch, an integer: hashwatt stores microseconds (Postgres `timestamptz`
   * keeps microseconds). Every decoder here sets it; finer protocol precision (nanoseconds) is
   * floored to the microsecond, so comparisons are made at microsecond precision. A double holds
   * every integer microsecond exactly until the year 2255, hence a number rather than a bigint.
   */
  tsUs?: number;
  value: number;
}

/** One item (series, line, data point) the decoder could not turn into samples. */
export interface DecodeProblem {
  /** Where in the body: "series 3", "line 12", "resourceMetrics[0].scopeMetrics[1].metrics[2]". */
  where: string;
  /** Stable machine-readable code, e.g. `bad_escape`, `dcgm_blank`, `too_many_labels`. */
  code: string;
  message: string;
}

export interface DecodeResult {
  samples: DecodedSample[];
  /** Series (remote_write), fields (line protocol) or data points (OTLP) with no mapping, counted. */
  unmapped: number;
  /** The first UNMAPPED_NAMES_MAX distinct unmapped names, in order of first appearance. */
  unmappedNames: string[];
  /** The first PROBLEMS_MAX problems, in body order: the first one is the first bad item. */
  problems: DecodeProblem[];
  /** Problems past PROBLEMS_MAX: counted, not listed, so a hostile body cannot grow the answer. */
  problemsDropped: number;
  /** The whole body was unreadable (bad snappy, truncated protobuf, invalid JSON...): no samples. */
  fatal?: DecodeProblem;
}

export const PROBLEMS_MAX = 100;
export const UNMAPPED_NAMES_MAX = 20;

/**
 * Problem codes that mean "filtered by design", not "the sender sent invalid data": a route should
 * not answer 400 because of them alone (remote_write drops a whole batch on 400).
 */
export const FILTERED_PROBLEM_CODES: ReadonlySet<string> = new Set(['dcgm_blank', 'no_recorded_value']);

/**
 * Problem codes for data hashwatt does not store by design (histograms, summaries, delta sums):
 * valid for the protocol, so a resend cannot fix them; OTLP counts them as rejected points.
 */
export const UNSUPPORTED_PROBLEM_CODES: ReadonlySet<string> = new Set([
  'unsupported_histogram',
  'unsupported_metric_type',
  'unsupported_temporality',
]);

/** Accumulates a DecodeResult with its bounds; decoders own one per body. */
export class ResultBuilder {
  readonly samples: DecodedSample[] = [];
  readonly problems: DecodeProblem[] = [];
  problemsDropped = 0;
  unmapped = 0;
  private readonly unmappedSeen = new Set<string>();
  readonly unmappedNames: string[] = [];

  problem(where: string, code: string, message: string): void {
    if (this.problems.length < PROBLEMS_MAX) this.problems.push({ where, code, message });
    else this.problemsDropped++;
  }

  noteUnmapped(name: string): void {
    this.unmapped++;
    if (this.unmappedNames.length < UNMAPPED_NAMES_MAX && !this.unmappedSeen.has(name)) {
      this.unmappedSeen.add(name);
      this.unmappedNames.push(name);
    }
  }

  build(): DecodeResult {
    return {
      samples: this.samples,
      unmapped: this.unmapped,
      unmappedNames: this.unmappedNames,
      problems: this.problems,
      problemsDropped: this.problemsDropped,
    };
  }
}

/** A result for a body that could not be read at all. */
export function fatalResult(code: string, message: string, where = 'body'): DecodeResult {
  return {
    samples: [],
    unmapped: 0,
    unmappedNames: [],
    problems: [],
    problemsDropped: 0,
    fatal: { where, code, message },
  };
}

/** Integer microseconds to the sample's two time fields. */
export function timeFields(tsUs: number): { tsMs: number; tsUs: number } {
  return { tsMs: Math.floor(tsUs / 1000), tsUs };
}

/**
 * True when integer microseconds are an exact instant: a safe integer (|t| < 2^53 µs, about the
 * year 2255 either side of 1970). Past that a double no longer holds every microsecond.
 */
export function isUsInRange(us: number): boolean {
  return Number.isSafeInteger(us);
}
