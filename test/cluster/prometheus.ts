// Prometheus 3.x for the local cluster (stub: filled in by the Prometheus work).
import type { AddonContext } from './control-plane.js';

export interface PrometheusInfo {
  /** http://127.0.0.1:<port> */
  url: string;
}

export function startPrometheus(_ctx: AddonContext): Promise<PrometheusInfo | undefined> {
  return Promise.resolve(undefined);
}
