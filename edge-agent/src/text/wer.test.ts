import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { normalizeText, wordErrors } from './wer.js';

// One normaliser truth: the trainer's textnorm.normalize must give exactly these too (trainer-image/tests/test_textnorm_evaluate.py).
const shared = (JSON.parse(readFileSync(new URL('../../../test/fixtures/normaliser-cases.json', import.meta.url), 'utf8')) as { cases: { text: string; normalised: string }[] }).cases;

describe('normalizeText', () => {
  it.each([
    ['Hello,  World!', 'hello world'],
    ["It’s the DOCTOR's note.", "it's the doctor's note"],
    ['well-known  \t fact?', 'well known fact'],
    ['  ', ''],
    ["'tis the dogs' bone", 'tis the dogs bone'],
    ['naïve café 42', 'na ve caf 42'],
  ])('%j → %j', (input, expected) => {
    expect(normalizeText(input)).toBe(expected);
  });

  it(`gives exactly the shared fixture's ${shared.length} normalised texts (the trainer's normaliser reads the same file)`, () => {
    expect(shared.length).toBeGreaterThanOrEqual(30);
    expect(shared.map((c) => normalizeText(c.text))).toEqual(shared.map((c) => c.normalised));
  });
});

describe('wordErrors', () => {
  it.each([
    ['the cat sat', 'the cat sat', 0, 0, 0],
    ['the cat sat', 'the bat sat', 1, 0, 0],
    ['the cat sat', 'the sat', 0, 1, 0],
    ['the cat sat', 'the cat sat down', 0, 0, 1],
    ['the cat sat', '', 0, 3, 0],
    ['', 'hello', 0, 0, 1],
    ['The Cat, sat.', 'the cat sat', 0, 0, 0],
  ])('%j vs %j', (ref, hyp, s, d, i) => {
    const e = wordErrors(ref, hyp);
    expect([e.substitutions, e.deletions, e.insertions]).toEqual([s, d, i]);
    expect(e.errors).toBe(s + d + i);
  });

  const sentence = fc.array(fc.constantFrom('a', 'b', 'c', 'd'), { maxLength: 8 }).map((w) => w.join(' '));
  it('is zero exactly for equal word sequences, symmetric in total, and bounded', () => {
    fc.assert(
      fc.property(sentence, sentence, (a, b) => {
        const ab = wordErrors(a, b);
        const ba = wordErrors(b, a);
        expect(ab.errors === 0).toBe(a === b);
        expect(ab.errors).toBe(ba.errors);
        const la = a === '' ? 0 : a.split(' ').length;
        const lb = b === '' ? 0 : b.split(' ').length;
        expect(ab.errors).toBeGreaterThanOrEqual(Math.abs(la - lb));
        expect(ab.errors).toBeLessThanOrEqual(Math.max(la, lb));
        expect(ab.referenceWords).toBe(la);
      }),
    );
  });
});
