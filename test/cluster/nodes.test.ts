import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { a100NodeNames, desiredNodes, edgeTaint, kwokNodeAnnotation, mapConcurrent } from './nodes.js';

describe('desiredNodes', () => {
  it('makes two A100 nodes and N Jetson nodes, all managed by kwok', () => {
    const nodes = desiredNodes(3);
    expect(nodes.map((n) => n.metadata?.name)).toEqual([...a100NodeNames, 'jetson-0', 'jetson-1', 'jetson-2']);
    for (const n of nodes) expect(n.metadata?.annotations?.[kwokNodeAnnotation.key]).toBe(kwokNodeAnnotation.value);
  });

  it('labels A100 nodes as GPU feature discovery does and gives them 8 GPUs', () => {
    const [a, b] = desiredNodes(0);
    expect(a?.metadata?.labels).toMatchObject({
      'nvidia.com/gpu.product': 'NVIDIA-A100-SXM4-80GB',
      'nvidia.com/gpu.present': 'true',
      'nvidia.com/gpu.count': '8',
      'kubernetes.io/arch': 'amd64',
    });
    expect(b?.metadata?.labels?.['nvidia.com/gpu.product']).toBe('NVIDIA-A100-SXM4-40GB');
    for (const n of [a, b]) {
      expect(n?.status?.capacity?.['nvidia.com/gpu']).toBe('8');
      expect(n?.status?.allocatable?.['nvidia.com/gpu']).toBe('8');
      expect(n?.spec?.taints ?? []).toEqual([]);
    }
  });

  it('marks Jetson nodes as arm64 edge devices with the NoSchedule edge taint', () => {
    const jetson = desiredNodes(1)[2];
    expect(jetson?.metadata?.labels).toMatchObject({
      'whisperops.dev/device': 'jetson-agx-xavier',
      'node-role.kubernetes.io/edge': '',
      'kubernetes.io/arch': 'arm64',
    });
    expect(jetson?.spec?.taints).toEqual([edgeTaint]);
    expect(jetson?.status?.nodeInfo?.architecture).toBe('arm64');
  });

  it('makes unique names for any count, 5000 included', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 300 }), (n) => {
        const names = desiredNodes(n).map((x) => x.metadata?.name);
        expect(new Set(names).size).toBe(n + 2);
      }),
      { numRuns: 20 },
    );
    expect(desiredNodes(5000)).toHaveLength(5002);
  });

  it.each([-1, 1.5, Number.NaN])('rejects %p edge nodes', (n) => {
    expect(() => desiredNodes(n)).toThrow(/non-negative integer/);
  });
});

describe('mapConcurrent', () => {
  it('keeps order and never runs more than the limit at once', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat(5), { maxLength: 40 }), fc.integer({ min: 1, max: 8 }), async (delays, limit) => {
        let running = 0;
        let peak = 0;
        const out = await mapConcurrent(delays, limit, async (d) => {
          running++;
          peak = Math.max(peak, running);
          await new Promise((resolve) => setTimeout(resolve, d));
          running--;
          return d * 2;
        });
        expect(out).toEqual(delays.map((d) => d * 2));
        expect(peak).toBeLessThanOrEqual(limit);
      }),
      { numRuns: 25 },
    );
  });
});
