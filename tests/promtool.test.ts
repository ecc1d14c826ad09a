import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DEFAULT_THRESHOLDS } from '../src/fleet/thresholds.ts';

// The Prometheus side of hashwatt checked by Prometheus's own tools (Debian packages prometheus and
// prometheus-alertmanager): the config, the rules, the rules' unit tests, Alertmanager's config.
// Then what promtool cannot know: that every rule is tested at its edges and that the thresholds are
// the built-in alert engine's defaults (src/fleet/thresholds.ts).

const ROOT = path.resolve(import.meta.dirname, '..');
const PROMETHEUS = path.join(ROOT, 'prometheus');
const ruleFiles = readdirSync(path.join(PROMETHEUS, 'rules'))
  .filter((f) => f.endsWith('.yml'))
  .map((f) => `prometheus/rules/${f}`);
const testFiles = readdirSync(path.join(PROMETHEUS, 'tests'))
  .filter((f) => f.endsWith('.yml'))
  .map((f) => `prometheus/tests/${f}`);

/** Runs a tool from the repo root; the assertion message is the tool's whole output. */
function run(tool: string, args: string[]): void {
  const result = spawnSync(tool, args, { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  if (result.error && (result.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new Error(
      `${tool} is not on PATH: install the Debian package that ships it (apt-get install prometheus)`,
    );
  }
  const output = `$ ${tool} ${args.join(' ')}\n${result.stdout}${result.stderr}`;
  expect(result.status, output).toBe(0);
}

describe('promtool', () => {
  it('accepts prometheus/prometheus.yml and the rule files it names', () => {
    run('promtool', ['check', 'config', 'prometheus/prometheus.yml']);
  });

  it('accepts every rule file', () => {
    expect(ruleFiles.length).toBeGreaterThan(0);
    run('promtool', ['check', 'rules', ...ruleFiles]);
  });

  it('passes the rules’ unit tests', () => {
    expect(testFiles.length).toBeGreaterThan(0);
    run('promtool', ['test', 'rules', ...testFiles]);
  });

  it('amtool accepts prometheus/alertmanager.yml', () => {
    run('amtool', ['check-config', 'prometheus/alertmanager.yml']);
  });
});

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  keep_firing_for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface AlertTest {
  alertname: string;
  eval_time: string;
  exp_alerts?: { exp_labels?: Record<string, string> }[];
}

const rules: Rule[] = ruleFiles.flatMap((file) =>
  (parse(readFileSync(path.join(ROOT, file), 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap(
    (g) => g.rules,
  ),
);
const alerts = rules.filter((r) => r.alert !== undefined);
const alertTests: AlertTest[] = testFiles.flatMap((file) =>
  (
    parse(readFileSync(path.join(ROOT, file), 'utf8')) as { tests: { alert_rule_test?: AlertTest[] }[] }
  ).tests.flatMap((t) => t.alert_rule_test ?? []),
);

function rule(name: string): Rule {
  const found = alerts.find((r) => r.alert === name);
  expect(found, `prometheus/rules/ has no alert ${name}`).toBeDefined();
  return found!;
}

/** Prometheus durations as used here (1h, 10m, 15s, 1m30s) in seconds. */
function seconds(duration: string | undefined): number {
  expect(duration, 'a duration').toBeDefined();
  const parts = [...duration!.matchAll(/(\d+)(h|m|s)/g)];
  expect(parts.map((p) => p[0]).join('')).toBe(duration);
  return parts.reduce(
    (sum, [, n, unit]) => sum + Number(n) * { h: 3600, m: 60, s: 1 }[unit as 'h' | 'm' | 's'],
    0,
  );
}

describe('alert rules', () => {
  it.each(alerts.map((r) => r.alert!))('%s has a for, a severity, a summary and a description', (name) => {
    const r = rule(name);
    expect(r.for, `${name}: for`).toBeDefined();
    expect(['critical', 'warning', 'info']).toContain(r.labels?.severity);
    expect(r.annotations?.summary, `${name}: summary`).toBeTruthy();
    expect(r.annotations?.description, `${name}: description`).toBeTruthy();
  });

  it.each(alerts.map((r) => r.alert!))('%s has unit tests where it fires and where it does not', (name) => {
    const tests = alertTests.filter((t) => t.alertname === name);
    expect(
      tests.some((t) => (t.exp_alerts ?? []).length > 0),
      `prometheus/tests/: no alert_rule_test where ${name} fires`,
    ).toBe(true);
    expect(
      tests.some((t) => (t.exp_alerts ?? []).length === 0),
      `prometheus/tests/: no alert_rule_test where ${name} does not fire (the edge, or before its for)`,
    ).toBe(true);
  });

  // The same names, thresholds and durations as hashwatt's built-in engine (src/alerting/rules.ts), so
  // an operator sees one meaning whichever fires: `for` is the engine's *_for_s (SiteDown: none, the
  // threshold is the wait) and keep_firing_for its resolve hold, half the `for` and at most 5 minutes
  // (SiteDown: twice the threshold). A change to DEFAULT_THRESHOLDS must change the rules too.
  const t = DEFAULT_THRESHOLDS;
  const hold = (forS: number) => Math.min(forS / 2, 300);
  const cases: [alert: string, exprFragment: string, forS: number, keepFiringForS: number][] = [
    ['SiteDown', `* 0 + ${t.site_down_after_s}`, 0, 2 * t.site_down_after_s],
    ['PowerSurplus', `>= ${t.surplus_min_ratio.toFixed(2)}`, t.surplus_for_s, hold(t.surplus_for_s)],
    [
      'PowerOverAvailable',
      `* ${1 + t.over_available_tolerance_ratio}`,
      t.over_available_for_s,
      hold(t.over_available_for_s),
    ],
    ['DevicesDown', `> ${t.devices_down_ratio.toFixed(2)}`, t.devices_down_for_s, hold(t.devices_down_for_s)],
    ['HashrateLow', `< ${t.hashing_ratio_min.toFixed(2)}`, t.hashrate_low_for_s, hold(t.hashrate_low_for_s)],
    ['GpuIdle', `< ${t.gpu_idle_util_max.toFixed(2)}`, t.gpu_idle_for_s, hold(t.gpu_idle_for_s)],
  ];
  it.each(cases)(
    '%s uses the built-in engine’s threshold (%s), for and resolve hold',
    (name, fragment, forS, keepS) => {
      const r = rule(name);
      expect(r.expr.replace(/\s+/g, ' '), `${name} expr`).toContain(fragment);
      expect(seconds(r.for), `${name}: for`).toBe(forS);
      expect(seconds(r.keep_firing_for), `${name}: keep_firing_for`).toBe(keepS);
    },
  );

  it.each(cases.filter(([name]) => name !== 'SiteDown'))('%s judges only sites that are up', (name) => {
    expect(rule(name).expr).toContain('(max by (site, kind) (hashwatt_site_up) == 1)');
  });

  it('reads SiteDown’s threshold per site from hashwatt_site_down_after_seconds, not from absent()', () => {
    const r = rule('SiteDown');
    expect(r.expr).toContain('hashwatt_site_down_after_seconds');
    expect(r.expr).toContain('time() - hashwatt_site_last_reading_timestamp_seconds');
    expect(r.expr).not.toContain('absent(');
  });
});
