// The process-backed nodes of the local cluster (stub: filled in by the process-node work).
import type { AddonContext } from './control-plane.js';

export interface ProcessNodesInfo {
  nodes: string[];
}

export function startProcessNodes(_ctx: AddonContext): Promise<ProcessNodesInfo | undefined> {
  return Promise.resolve(undefined);
}
