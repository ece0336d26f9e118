/**
 * Prometheus without OpenTelemetry: runs a few payments and prints the registry's metrics in the
 * Prometheus text format, as a `/metrics` endpoint would serve them.
 *
 *   node examples/prometheus/dist/main.js
 */
import { Registry } from 'prom-client';
import { runExample } from './example.js';

const registry = new Registry(); // the application's own; prom-client's global default stays empty
const { charged } = await runExample(registry);
console.log(`charged: ${charged.join(', ')}\n`);
console.log(await registry.metrics());
