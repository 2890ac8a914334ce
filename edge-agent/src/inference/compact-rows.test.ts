// A batched decode drops the windows that have ended: compactRows says which rows move where so the
// live ones fill the first positions, copying only the rows that must move.
import { describe, expect, it } from '@jest/globals';
import { compactRows, moveRows } from './whisper-model.js';

/** Applies the moves to a batch of row labels and keeps the first live.length rows. */
function apply(n: number, live: number[]): number[] {
  return moveRows(Array.from({ length: n }, (_, p) => p), compactRows(live), live.length);
}

describe('compactRows', () => {
  it('moves nothing when the windows that ended are the last rows', () => {
    expect(compactRows([0, 1])).toEqual([]);
    expect(apply(4, [0, 1])).toEqual([0, 1]);
  });

  it('fills each hole with a live row from the tail, one copy per hole', () => {
    expect(compactRows([0, 2, 3])).toEqual([[3, 1]]);
    expect(apply(4, [0, 2, 3]).sort()).toEqual([0, 2, 3]);
    expect(compactRows([3])).toEqual([[3, 0]]);
    expect(apply(8, [1, 4, 6, 7]).sort()).toEqual([1, 4, 6, 7]);
    expect(compactRows([1, 4, 6, 7])).toHaveLength(3); // positions 0, 2 and 3 were free; 1 stays
  });

  it('keeps every row when none ended', () => {
    expect(compactRows([0, 1, 2, 3])).toEqual([]);
  });
});
