// The FineTuneJob URI pattern: every artifact URI the other kinds accept, plus pvc://<claim>/<path>.
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { FINETUNEJOB_URI } from './finetunejob-schema.js';
import { ARTIFACT_URI } from './schema-dsl.js';

const ftj = new RegExp(FINETUNEJOB_URI);
const artifact = new RegExp(ARTIFACT_URI);

describe('FINETUNEJOB_URI', () => {
  it.each([
    ['s3://whisperops-models/tiny-whisper-synth/tiny-whisper-synth-1.0.0/', true],
    ['file:///models/base', true],
    ['https://models.example/base/', true],
    ['pvc://training-data/corpora/finance.txt', true],
    ['pvc://models.v2/out/', true],
    ['pvc://models', true],
    ['pvc://Models/x', false],
    ['pvc:///no-claim', false],
    ['pvc://-bad/x', false],
    ['gs://bucket/models/tiny', false],
    ['/models/base', false],
    ['s3://', false],
    ['file://localhost/models/base', true],
    ['file://trainer-host/models/base', false],
  ])('%s → %s', (uri, ok) => {
    expect(ftj.test(uri)).toBe(ok);
  });

  it('accepts exactly what ARTIFACT_URI accepts, plus pvc:// URIs', () => {
    fc.assert(fc.property(fc.oneof(fc.webUrl(), fc.string(), fc.constantFrom('s3://b/k', 'file:///x', 'gs://b/k', 'pvc://claim/p', 's3:/x')), (uri) => {
      expect(ftj.test(uri)).toBe(artifact.test(uri) || /^pvc:\/\/[a-z0-9]([-.a-z0-9]*[a-z0-9])?(\/.*)?$/.test(uri));
    }));
  });
});
