import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { runExample } from '../../examples/prometheus/src/example.js';
import { MESSAGE_DURATION_SECONDS, OUTCOMES_TOTAL } from '../../examples/prometheus/src/outcome-metrics.js';

const main = fileURLToPath(new URL('../../examples/prometheus/dist/main.js', import.meta.url));
type Registry = NonNullable<Parameters<typeof runExample>[0]>;
// prom-client as the example resolves it: its Registry class, and the global default registry.
const promClient = createRequire(new URL('../../examples/prometheus/package.json', import.meta.url))(
  'prom-client',
) as { Registry: new () => Registry; register: Registry };
const SCOPE = 'v1:billing:PaymentConsumer.onMessage';

describe('the Prometheus example (prom-client fed by an outcome listener, no OpenTelemetry)', () => {
  it('counts each outcome into the registry the app passes in, and nothing into the global one', async () => {
    const registry = new promClient.Registry();
    const { charged } = await runExample(registry);
    expect(charged).toEqual(['PAY-1', 'PAY-2', 'PAY-3', 'PAY-4']);

    const outcomes = (await registry.getSingleMetric(OUTCOMES_TOTAL)?.get())?.values ?? [];
    const count = (labels: Record<string, string>) =>
      outcomes.find((v) => JSON.stringify(v.labels) === JSON.stringify({ ...labels }))?.value;
    expect(count({ outcome: 'processed', scope: SCOPE })).toBe(4);
    expect(count({ outcome: 'duplicate', scope: SCOPE, tier: 'cache' })).toBe(1);
    expect(count({ outcome: 'conflict', scope: SCOPE })).toBe(1);
    expect(count({ outcome: 'failed', scope: SCOPE })).toBe(1);
    expect(outcomes).toHaveLength(4);

    const durations = ((await registry.getSingleMetric(MESSAGE_DURATION_SECONDS)?.get())?.values ?? []) as {
      metricName?: string;
      value: number;
    }[];
    const observed = durations
      .filter((v) => v.metricName === `${MESSAGE_DURATION_SECONDS}_count`)
      .reduce((n, v) => n + v.value, 0);
    expect(observed).toBe(7);

    expect(await promClient.register.getMetricsAsJSON()).toEqual([]);
  });

  it('runs from its build and prints the metrics text', async () => {
    expect(existsSync(main), 'build first: pnpm build').toBe(true);
    const { stdout } = await promisify(execFile)(process.execPath, [main], { timeout: 30_000 });
    expect(stdout).toContain('charged: PAY-1, PAY-2, PAY-3, PAY-4');
    expect(stdout).toContain('# TYPE idempotent_mq_outcomes_total counter');
    expect(stdout).toContain(`idempotent_mq_outcomes_total{outcome="processed",scope="${SCOPE}"} 4`);
    expect(stdout).toContain(
      `idempotent_mq_outcomes_total{outcome="duplicate",scope="${SCOPE}",tier="cache"} 1`,
    );
    expect(stdout).toContain('# TYPE idempotent_mq_message_duration_seconds histogram');
  });
});
