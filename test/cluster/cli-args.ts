// Command-line arguments of test/cluster/cli.ts (pure, unit-tested).
import { defaultEdgeNodes, scaleEdgeNodes } from './config.js';
import type { Owner } from './control-plane.js';

export interface Args {
  command: string;
  edgeNodes: number;
  owner: Owner;
  json: boolean;
  ifOwner: Owner | undefined;
  /** the jest process that uses the cluster (registered by up, released by down) */
  userPid: number | undefined;
  force: boolean;
}

function parseOwner(value: string | undefined): Owner {
  if (value === 'cli' || value === 'jest') return value;
  throw new Error(`owner must be cli or jest, got ${value ?? '(nothing)'}`);
}

export function parseArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): Args {
  const args: Args = {
    command: argv[0] ?? 'help',
    edgeNodes: env.WHISPEROPS_EDGE_NODES !== undefined ? Number(env.WHISPEROPS_EDGE_NODES) : defaultEdgeNodes,
    owner: 'cli',
    json: false,
    ifOwner: undefined,
    userPid: undefined,
    force: false,
  };
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--edge-nodes':
        args.edgeNodes = Number(argv[++i]);
        break;
      case '--scale':
        args.edgeNodes = scaleEdgeNodes;
        break;
      case '--owner':
        args.owner = parseOwner(argv[++i]);
        break;
      case '--if-owner':
        args.ifOwner = parseOwner(argv[++i]);
        break;
      case '--user-pid':
        args.userPid = Number(argv[++i]);
        if (!Number.isInteger(args.userPid) || args.userPid <= 0) throw new Error('--user-pid must be a process id');
        break;
      case '--force':
        args.force = true;
        break;
      case '--json':
        args.json = true;
        break;
      default:
        throw new Error(`unknown argument ${a ?? ''}`);
    }
  }
  if (!Number.isInteger(args.edgeNodes) || args.edgeNodes < 0) throw new Error(`--edge-nodes must be a non-negative integer`);
  return args;
}

