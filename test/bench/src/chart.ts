/** Draws the results as an SVG bar chart with vega-lite (rendered headless by vega). */
import * as vega from 'vega';
import { compile } from 'vega-lite';

export interface ChartRow {
  readonly scenario: string;
  readonly series: string;
  readonly opsPerSec: number;
}

export async function renderChart(rows: readonly ChartRow[], title: string): Promise<string> {
  const spec = compile({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    data: { values: rows as ChartRow[] },
    width: 560,
    mark: { type: 'bar', tooltip: true },
    encoding: {
      y: { field: 'scenario', type: 'nominal', title: null, sort: null, axis: { labelLimit: 420 } },
      yOffset: { field: 'series', type: 'nominal' },
      x: {
        field: 'opsPerSec',
        type: 'quantitative',
        title: 'operations per second, log scale (higher is better)',
        scale: { type: 'log', domainMin: 100 },
      },
      // Bars on a log scale need a start: the left edge of the domain.
      x2: { datum: 100 },
      color: {
        field: 'series',
        type: 'nominal',
        title: null,
        scale: {
          domain: ['idempotent-mq', 'raw baseline', 'Powertools (peer)'],
          range: ['#2f6fde', '#9aa5b1', '#e08a2b'],
        },
        legend: { orient: 'top' },
      },
    },
    config: { font: 'sans-serif', view: { stroke: null } },
  }).spec;
  const view = new vega.View(vega.parse(spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}
