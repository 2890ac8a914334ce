// The feedback counters' series exist at 0 as soon as a model set names their labels.
import { describe, expect, it } from '@jest/globals';
import { createMetrics, seedFeedbackSeries } from './metrics.js';

const series = async (m: ReturnType<typeof createMetrics>, name: string): Promise<string[]> =>
  (await m.registry.metrics()).split('\n').filter((l) => l.startsWith(name + '{'));

describe('seedFeedbackSeries', () => {
  it('creates word-error and reference-word series at 0 per deployment × version × allow-listed scenario (and other), leaving counted values alone', async () => {
    const m = createMetrics('p');
    m.wordErrors.inc({ deployment: 'asr', model_version: 'v1', scenario: 'medical' }, 3);
    const set = { scenarios: ['medical', 'general'], models: [{ name: 'asr', stable: { version: 'v1' }, candidate: { version: 'v2' } }, { name: 'kws', stable: { version: 'k1' } }] };
    expect(seedFeedbackSeries(m, set)).toBe(9);
    const errors = await series(m, 'whisperops_agent_word_errors_total');
    const refs = await series(m, 'whisperops_agent_reference_words_total');
    expect(errors).toHaveLength(9);
    expect(refs).toHaveLength(9);
    expect(errors).toContain('whisperops_agent_word_errors_total{deployment="asr",model_version="v1",scenario="medical",pool="p"} 3');
    expect(errors).toContain('whisperops_agent_word_errors_total{deployment="asr",model_version="v2",scenario="other",pool="p"} 0');
    expect(refs).toContain('whisperops_agent_reference_words_total{deployment="kws",model_version="k1",scenario="general",pool="p"} 0');
    // Seeding again (the same set re-applied) changes nothing.
    seedFeedbackSeries(m, set);
    expect(await series(m, 'whisperops_agent_word_errors_total')).toEqual(errors);
  });

  it('creates nothing without an allow-list', async () => {
    const m = createMetrics('p');
    expect(seedFeedbackSeries(m, { models: [{ name: 'asr', stable: { version: 'v1' } }] })).toBe(0);
    expect(await series(m, 'whisperops_agent_word_errors_total')).toEqual([]);
  });
});
