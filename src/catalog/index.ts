/** The domain's vocabulary: site and device kinds, device statuses, and the metric catalog. */

export {
  EXTRA_COLUMNS,
  EXTRA_METRICS,
  type ExtraColumn,
  type ExtraColumnProblem,
  type ExtraMetricDefinition,
  type ExtraMetricName,
  extraColumn,
  isKnownMetricName,
} from './extra-metrics.ts';
export {
  aggregateAcrossDevices,
  CORE_METRICS,
  type CoreMetricName,
  DEVICE_KINDS,
  DEVICE_STATUSES,
  type DeviceKind,
  type DeviceStatus,
  findMetric,
  isInRange,
  type MetricDefinition,
  type MetricType,
  SITE_KINDS,
  type SiteAggregation,
  type SiteKind,
  type StoredPrecision,
  toStoredPrecision,
} from './metrics.ts';
export { DEVICE_NAME_MAX, MODEL_NAME_MAX, nameProblem } from './names.ts';
