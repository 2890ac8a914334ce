// The fake nodes kwok simulates: A100 training nodes and Jetson edge devices.
import type { CoreV1Api, V1Node } from '@kubernetes/client-node';

/** kwok manages only nodes carrying this annotation (`--manage-nodes-with-annotation-selector`). */
export const kwokNodeAnnotation = { key: 'kwok.x-k8s.io/node', value: 'fake' } as const;
export const edgeTaint = { key: 'whisperops.dev/edge', value: 'true', effect: 'NoSchedule' } as const;
export const a100Products = ['NVIDIA-A100-SXM4-80GB', 'NVIDIA-A100-SXM4-40GB'] as const;

function baseNode(name: string, arch: 'amd64' | 'arm64'): V1Node {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      annotations: { [kwokNodeAnnotation.key]: kwokNodeAnnotation.value, 'node.alpha.kubernetes.io/ttl': '0' },
      labels: {
        'kubernetes.io/hostname': name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': arch,
        'beta.kubernetes.io/os': 'linux',
        'beta.kubernetes.io/arch': arch,
        type: 'kwok',
      },
    },
    spec: {},
  };
}

/** An 8-GPU A100 node labelled as NVIDIA GPU feature discovery labels it. */
export function a100Node(name: string, product: (typeof a100Products)[number]): V1Node {
  const node = baseNode(name, 'amd64');
  const gpuMemoryMiB = product.endsWith('80GB') ? 81920 : 40960;
  node.metadata = {
    ...node.metadata,
    labels: {
      ...node.metadata?.labels,
      'nvidia.com/gpu.present': 'true',
      'nvidia.com/gpu.product': product,
      'nvidia.com/gpu.count': '8',
      'nvidia.com/gpu.memory': String(gpuMemoryMiB),
      'nvidia.com/gpu.family': 'ampere',
      'nvidia.com/gpu.compute.major': '8',
      'nvidia.com/gpu.compute.minor': '0',
      'node.kubernetes.io/instance-type': product.endsWith('80GB') ? 'p4de.24xlarge' : 'p4d.24xlarge',
    },
  };
  // The shape of an AWS p4d/p4de.24xlarge: 96 vCPUs, 1152 GiB, 8 A100s.
  const resources = { cpu: '96', memory: '1152Gi', pods: '110', 'ephemeral-storage': '7Ti', 'nvidia.com/gpu': '8' };
  node.status = { capacity: resources, allocatable: resources, nodeInfo: nodeInfo('amd64') };
  return node;
}

/** A Jetson AGX Xavier edge device: arm64, edge role label, NoSchedule edge taint. */
export function jetsonNode(name: string): V1Node {
  const node = baseNode(name, 'arm64');
  node.metadata = {
    ...node.metadata,
    labels: {
      ...node.metadata?.labels,
      'whisperops.dev/device': 'jetson-agx-xavier',
      'node-role.kubernetes.io/edge': '',
    },
  };
  node.spec = { taints: [{ ...edgeTaint }] };
  const resources = { cpu: '8', memory: '32Gi', pods: '110', 'ephemeral-storage': '32Gi' };
  node.status = { capacity: resources, allocatable: resources, nodeInfo: nodeInfo('arm64') };
  return node;
}

function nodeInfo(architecture: string): NonNullable<V1Node['status']>['nodeInfo'] {
  // kwok's node-initialize stage keeps what is set here and fills in the rest.
  return {
    architecture,
    operatingSystem: 'linux',
    bootID: '',
    containerRuntimeVersion: '',
    kernelVersion: '',
    kubeProxyVersion: '',
    kubeletVersion: '',
    machineID: '',
    osImage: '',
    systemUUID: '',
  };
}

export const a100NodeNames = ['a100-80gb-0', 'a100-40gb-1'] as const;

/** Every node of a cluster with `edgeNodes` Jetson devices. Names are stable: a100-*, jetson-<i>. */
export function desiredNodes(edgeNodes: number): V1Node[] {
  if (!Number.isInteger(edgeNodes) || edgeNodes < 0) throw new Error(`edge node count must be a non-negative integer, got ${edgeNodes}`);
  const nodes = [a100Node(a100NodeNames[0], a100Products[0]), a100Node(a100NodeNames[1], a100Products[1])];
  for (let i = 0; i < edgeNodes; i++) nodes.push(jetsonNode(`jetson-${i}`));
  return nodes;
}

/** Runs `fn` over `items` with at most `limit` calls in flight. */
export async function mapConcurrent<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, () => worker()));
  return results;
}

function statusCode(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'number') return err.code;
  return undefined;
}

/** Creates the nodes (an existing node of the same name is kept), `concurrency` requests at a time. */
export async function createNodes(core: CoreV1Api, nodes: readonly V1Node[], concurrency = 32): Promise<void> {
  await mapConcurrent(nodes, concurrency, async (node) => {
    try {
      await core.createNode({ body: node });
    } catch (err) {
      if (statusCode(err) !== 409) throw new Error(`create node ${node.metadata?.name ?? '?'}`, { cause: err });
    }
  });
}
