import { HashwattError } from '../errors.ts';
import { domainError } from '../storage/errors.ts';
import { retentionCutoff } from '../storage/partitions.ts';
import { type ReadingColumns, samplesOf } from '../storage/reading-columns.ts';
import { type QueueLoad, SiteAdmission, type SiteAdmissionOptions } from './admission.ts';
import type { IngestBatch } from './batch.ts';
import type { DeviceDirectory } from './device-directory.ts';
import type { LatestStateWriter } from './latest-state.ts';
import type { Rejection } from './reading.ts';
import { SiteTurns } from './site-turns.ts';
import type { GroupCommitWriter } from './writer.ts';

/** What a reading's columns take while it waits for its commit (src/storage/reading-columns.ts)... */
const BYTES_PER_READING = 96;
/** ...and, when it carries extra metrics, what their object beside the columns adds. */
const EXTRA_BYTES_PER_READING = 416;

/** What resolved readings hold until their commit: their columns, and the extras of those with any. */
export function heldBytes(readings: ReadingColumns): number {
  let bytes = readings.length * BYTES_PER_READING;
  const { extras } = readings;
  if (extras) for (const e of extras) if (e !== undefined) bytes += EXTRA_BYTES_PER_READING;
  return bytes;
}

/** The transports that feed the pipeline; a label on every ingest metric. */
export type Transport = 'http' | 'ws' | 'remote_write' | 'influx' | 'otlp';

/** The site a request authenticated as; readings are always stored under it, never under a payload id. */
export interface AuthenticatedSite {
  id: number;
  name: string;
}

/** What the sender is told about a batch, after commit. */
export interface IngestResult {
  /** Readings with at least one sample newly stored. */
  accepted: number;
  /** Readings whose every sample was already stored (a retry): safe, counted, not stored twice. */
  duplicates: number;
  /** Samples (metric values) newly stored. */
  acceptedSamples: number;
  /**
   * Samples already stored: a retry, or a metric repeated for a (device, ts) that has it. The
   * stored value is kept (first write wins), so a resend never alters what was acknowledged.
   */
  duplicateSamples: number;
  rejected: Rejection[];
}

export interface IngestObserver {
  batchIngested(event: {
    transport: Transport;
    site: AuthenticatedSite;
    accepted: number;
    acceptedSamples: number;
    duplicates: number;
    duplicateSamples: number;
    rejected: readonly Rejection[];
  }): void;
  /** Items a push receiver could not map (series, fields, data points): counted, not stored. */
  unmapped(site: AuthenticatedSite, protocol: Transport, count: number): void;
  /** One HTTP request or WebSocket frame answered; `status` is the HTTP status or its WebSocket equivalent. */
  requestCompleted(transport: Transport, status: number, seconds: number): void;
}

export const noopIngestObserver: IngestObserver = {
  batchIngested: () => {},
  unmapped: () => {},
  requestCompleted: () => {},
};

export interface PipelineOptions {
  directory: DeviceDirectory;
  writer: GroupCommitWriter;
  latest: LatestStateWriter;
  retentionDays: number;
  now?: () => number;
  observer?: IngestObserver;
  /** Each site's share of the write queue under overload (docs/reliability.md). */
  fairness?: SiteAdmissionOptions;
}

/**
 * The one path every reading takes, whatever transport brought it: admit → validate → resolve
 * devices → group commit → latest state → result. Transports only decode and encode.
 */
export class IngestPipeline {
  readonly #o: Required<Omit<PipelineOptions, 'fairness'>>;
  readonly #admission: SiteAdmission;
  readonly #turns = new SiteTurns();
  #closing = false;

  constructor(options: PipelineOptions) {
    const { fairness, ...rest } = options;
    this.#o = { now: Date.now, observer: noopIngestObserver, ...rest };
    this.#admission = new SiteAdmission(fairness);
  }

  get closing(): boolean {
    return this.#closing;
  }

  /** Where transports report each answered request or frame. */
  get observer(): IngestObserver {
    return this.#o.observer;
  }

  /**
   * Refuses a request before it is decoded when the write queue, or the site's share of it, is
   * already full: under overload, parsing what will be refused anyway would spend the CPU and heap
   * the backlog needs.
   */
  admit(site: AuthenticatedSite, declaredBytes: number): void {
    const { writer } = this.#o;
    // A Content-Length that is absent (chunked) or garbage says nothing: the body's real size is
    // charged once it is read (ingest), so here it counts as empty rather than as NaN.
    const wireBytes = Number.isFinite(declaredBytes) && declaredBytes > 0 ? declaredBytes : 0;
    this.#admission.assertShare(
      site.id,
      { readings: 1, bytes: wireBytes },
      this.#queueLimits(),
      writer.depth,
    );
    writer.assertRoom(1, wireBytes);
  }

  /** The writer's bounds, both of which refuse with 429 when full: readings (at its rate) and bytes. */
  #queueLimits(): QueueLoad {
    return { readings: this.#o.writer.queueLimit, bytes: this.#o.writer.maxQueuedBytes };
  }

  /**
   * Runs synchronous CPU work of a site's batch (a transport's parse, and then its validation in
   * `ingest`, called in the same task) in the sites' turns, so under overload no site's parsing
   * queues another's behind all of its own.
   */
  turn<T>(siteId: number, work: () => T): Promise<T> {
    return this.#turns.run(siteId, work);
  }

  /**
   * Ingests one batch for a site. Throws HashwattError 429/503 when nothing of it was stored.
   *
   * The batch is charged to the write queue by what it will hold while it waits for its commit, its
   * readings' columns, from its reading count on entry and exactly once they are built: never by
   * its body. Charged by the body, a protocol with verbose bodies (remote_write's labels on every
   * sample are ~10× the columns) filled its site's share of the queue at a fraction of the rate the
   * writer drains. What decoding holds is bounded before that, by the body limits and the decode
   * budget (src/http/body.ts), and is let go by the batch's check.
   */
  async ingest(site: AuthenticatedSite, batch: IngestBatch, transport: Transport): Promise<IngestResult> {
    if (this.#closing) {
      throw new HashwattError(
        'shutting_down',
        'the service is shutting down; retry against another instance',
        {
          retryAfterMs: 1_000,
        },
      );
    }
    const { writer } = this.#o;
    // The site's share first: a flooder is refused before it can take the room other sites need.
    const estimate = { readings: batch.size, bytes: batch.size * BYTES_PER_READING };
    this.#admission.assertShare(site.id, estimate, this.#queueLimits(), writer.depth);
    const reservation = writer.reserve(estimate.readings, estimate.bytes);
    let releaseShare = this.#admission.hold(site.id, estimate);
    try {
      const { readings, rejected } = await this.#checkAndResolve(site, batch);
      const held = { readings: batch.size, bytes: heldBytes(readings) };
      if (held.bytes !== estimate.bytes) {
        writer.resize(reservation, held.bytes);
        releaseShare();
        releaseShare = this.#admission.hold(site.id, held);
      }
      const duplicate = await writer.write(reservation, readings);
      let duplicates = 0;
      let acceptedSamples = 0;
      let duplicateSamples = 0;
      for (let i = 0; i < readings.length; i++) {
        const samples = samplesOf(readings, i);
        const repeated = duplicate[i]!;
        if (repeated >= samples) duplicates++;
        acceptedSamples += samples - repeated;
        duplicateSamples += repeated;
      }
      this.#o.latest.offer(readings);
      const result = {
        accepted: readings.length - duplicates,
        duplicates,
        acceptedSamples,
        duplicateSamples,
        rejected,
      };
      this.#o.observer.batchIngested({ transport, site, ...result });
      return result;
    } catch (error) {
      throw domainError(error);
    } finally {
      writer.release(reservation);
      releaseShare();
    }
  }

  /**
   * Validates a batch and resolves its devices: the validated objects live only in this call, so
   * what waits for the commit is the columns it returns. Every transport decodes in the site's
   * turn (turn()) and calls ingest straight after, in the same task: validating here keeps the
   * decoded objects inside that task, so they die young. Waiting for a second turn kept every
   * queued batch's objects alive across young-generation collections, which copied and promoted
   * them (docs/performance.md, "Readings in columns").
   */
  async #checkAndResolve(
    site: AuthenticatedSite,
    batch: IngestBatch,
  ): Promise<{ readings: ReadingColumns; rejected: Rejection[] }> {
    const nowMs = this.#o.now();
    const checked = batch.check({ nowMs, oldestMs: retentionCutoff(nowMs, this.#o.retentionDays) });
    const { readings, rejected } = await this.#o.directory.resolve(site.id, checked.valid, nowMs);
    return {
      readings,
      rejected:
        rejected.length === 0
          ? checked.rejected
          : [...checked.rejected, ...rejected].sort((a, b) => a.index - b.index),
    };
  }

  /**
   * Refuses new batches and resolves once every admitted batch has committed or failed and the
   * latest state of what committed is written.
   */
  async close(): Promise<void> {
    this.#closing = true;
    await this.#o.writer.idle();
    await this.#o.latest.close();
  }
}
