/** Placeholder until the Prometheus example lands. */
export {};
