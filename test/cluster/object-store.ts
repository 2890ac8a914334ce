// The S3-compatible object store of the local cluster (stub: filled in by the object-store work).
import type { AddonContext } from './control-plane.js';

export interface ObjectStoreInfo {
  /** http://127.0.0.1:<port> */
  endpoint: string;
}

export function startObjectStore(_ctx: AddonContext): Promise<ObjectStoreInfo | undefined> {
  return Promise.resolve(undefined);
}
