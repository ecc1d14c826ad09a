import { DeviceDirectory } from '../../src/ingest/device-directory.ts';
import { LatestStateWriter } from '../../src/ingest/latest-state.ts';
import { IngestPipeline, type PipelineOptions } from '../../src/ingest/pipeline.ts';
import { GroupCommitWriter, type WriterOptions } from '../../src/ingest/writer.ts';
import { silentLogger } from '../../src/log.ts';
import type { Storage } from '../../src/storage/database.ts';

/**
 * A real ingest pipeline of a test's own on `storage` (the service does not expose its writer), so
 * a test can set its bounds and read the writer's queue depth.
 */
export function testPipeline(
  storage: Storage,
  writerOptions: Partial<WriterOptions> = {},
  fairness?: PipelineOptions['fairness'],
): { pipeline: IngestPipeline; writer: GroupCommitWriter } {
  const writer = new GroupCommitWriter({
    storage,
    logger: silentLogger,
    maxBatchReadings: 5_000,
    flushDelayMs: 5,
    queueDelayTargetMs: 1_000,
    maxQueuedReadings: 100_000,
    maxQueuedBytes: 48 * 1024 * 1024,
    ensurePartitions: async () => {},
    ...writerOptions,
  });
  const latest = new LatestStateWriter({ storage, logger: silentLogger, flushMs: 1_000 });
  const pipeline = new IngestPipeline({
    directory: new DeviceDirectory(storage.db, 1_000),
    writer,
    latest,
    retentionDays: 30,
    ...(fairness && { fairness }),
  });
  return { pipeline, writer };
}
