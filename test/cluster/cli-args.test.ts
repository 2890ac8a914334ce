import { describe, expect, it } from '@jest/globals';
import { parseArgs } from './cli-args.js';

describe('parseArgs', () => {
  it.each([
    [['up'], {}, { command: 'up', edgeNodes: 20, owner: 'cli', json: false }],
    [['up', '--scale'], {}, { edgeNodes: 5000 }],
    [['up', '--edge-nodes', '7', '--owner', 'jest', '--json'], {}, { edgeNodes: 7, owner: 'jest', json: true }],
    [['up'], { WHISPEROPS_EDGE_NODES: '40' }, { edgeNodes: 40 }],
    [['down', '--if-owner', 'jest'], {}, { command: 'down', ifOwner: 'jest' }],
  ])('%j with env %j', (argv, env, expected) => {
    expect(parseArgs(argv, env)).toMatchObject(expected);
  });

  it.each([
    [['up', '--edge-nodes', '-3']],
    [['up', '--edge-nodes', 'many']],
    [['up', '--owner', 'root']],
    [['up', '--bogus']],
  ])('rejects %j', (argv) => {
    expect(() => parseArgs(argv, {})).toThrow();
  });
});
