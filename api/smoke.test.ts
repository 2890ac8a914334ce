import { describe, expect, it } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';

describe('toolchain', () => {
  it('loads the ESM kubernetes client under jest', () => {
    const kc = new k8s.KubeConfig();
    expect(typeof kc.makeApiClient).toBe('function');
  });
});
