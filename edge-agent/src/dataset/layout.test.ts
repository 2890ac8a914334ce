import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { decodeWav, encodeWav16 } from '../audio/wav.js';
import { compactStamp, datasetWav, isPlainPcm16Wav, manifestBody, manifestLine, manifestName, safeSegment, sampleFolder, utcDay, wavName } from './layout.js';

/** A WAV built chunk by chunk: fmt (tag, bits), data (declared size, real bytes). */
function wavBytes(opts: { tag?: number; bits?: number; declared?: number; dataBytes?: number; extensible?: number; list?: boolean } = {}): Uint8Array {
  const bits = opts.bits ?? 16;
  const dataBytes = opts.dataBytes ?? 8;
  const fmtSize = opts.extensible !== undefined ? 40 : 16;
  const list = opts.list ? 12 : 0;
  const out = new Uint8Array(12 + 8 + fmtSize + list + 8 + dataBytes);
  const dv = new DataView(out.buffer);
  const put = (at: number, s: string) => [...s].forEach((c, i) => (out[at + i] = c.charCodeAt(0)));
  put(0, 'RIFF');
  dv.setUint32(4, out.length - 8, true);
  put(8, 'WAVE');
  put(12, 'fmt ');
  dv.setUint32(16, fmtSize, true);
  dv.setUint16(20, opts.extensible !== undefined ? 0xfffe : (opts.tag ?? 1), true);
  dv.setUint16(22, 1, true);
  dv.setUint32(24, 16000, true);
  dv.setUint32(28, 16000 * (bits / 8), true);
  dv.setUint16(32, bits / 8, true);
  dv.setUint16(34, bits, true);
  if (opts.extensible !== undefined) dv.setUint16(20 + 24, opts.extensible, true);
  let pos = 20 + fmtSize;
  if (opts.list) {
    put(pos, 'LIST');
    dv.setUint32(pos + 4, 4, true);
    put(pos + 8, 'INFO');
    pos += 12;
  }
  put(pos, 'data');
  dv.setUint32(pos + 4, opts.declared ?? dataBytes, true);
  return out;
}

describe('object names', () => {
  it.each([
    ['jetsons-agent-7d9f-abcde', 'jetsons-agent-7d9f-abcde'],
    ['a/b\\c d', 'a-b-c-d'],
    ['../etc', 'etc'],
    ['', 'unknown'],
    ['x'.repeat(300), 'x'.repeat(128)],
  ])('safeSegment(%j) = %j', (input, out) => {
    expect(safeSegment(input)).toBe(out);
  });

  it('places a sample in <scenario>/<UTC day>/ with <agent>-<requestId>.wav and manifest-<agent>-<start>-<seq>.jsonl', () => {
    const t = Date.parse('2026-11-26T23:59:59.999Z');
    expect(utcDay(t)).toBe('2026-11-26');
    expect(compactStamp(Date.parse('2026-11-26T15:19:00.123Z'))).toBe('20261126T151900Z');
    expect(sampleFolder({ scenario: 'finance', time: t })).toBe('finance/2026-11-26/');
    expect(wavName('jetsons-agent-x', 'req_0123')).toBe('jetsons-agent-x-req_0123.wav');
    expect(manifestName('jetsons-agent-x', Date.parse('2026-11-26T15:19:00Z'), 12)).toBe('manifest-jetsons-agent-x-20261126T151900Z-000012.jsonl');
  });

  it('writes the trainer\'s manifest format: audio relative to the manifest, text, scenario, and extra keys; one JSON line each', () => {
    const info = { requestId: 'req_1', reference: 'Buy "ten" shares\nnow', scenario: 'finance', deployment: 'asr', modelVersion: 'v1', role: 'candidate', hypothesis: 'by ten shares', time: Date.parse('2026-11-26T15:19:00Z'), audioSeconds: 2.34567 };
    const line = manifestLine(info, 'agent-1', 'jetsons');
    expect(line).toEqual({
      audio: 'agent-1-req_1.wav', text: 'Buy "ten" shares\nnow', scenario: 'finance', deployment: 'asr', modelVersion: 'v1', role: 'candidate', pool: 'jetsons',
      agent: 'agent-1', requestId: 'req_1', time: '2026-11-26T15:19:00.000Z', hypothesis: 'by ten shares', audioSeconds: 2.346,
    });
    const body = new TextDecoder().decode(manifestBody([line, line]));
    expect(body.endsWith('\n')).toBe(true);
    expect(body.trim().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual([line, line]);
  });
});

describe('sample WAVs', () => {
  it.each([
    ['plain 16-bit PCM', wavBytes(), true],
    ['16-bit PCM with a LIST chunk before data', wavBytes({ list: true }), true],
    ['WAVE_FORMAT_EXTENSIBLE with the PCM sub-format', wavBytes({ extensible: 1 }), true],
    ['streamed: data size 0x7ffff000 (espeak-ng --stdout)', wavBytes({ declared: 0x7ffff000 }), false],
    ['streamed: data size 0', wavBytes({ declared: 0 }), false],
    ['24-bit PCM', wavBytes({ bits: 24, dataBytes: 9 }), false],
    ['32-bit float', wavBytes({ tag: 3, bits: 32 }), false],
    ['EXTENSIBLE float', wavBytes({ extensible: 3, bits: 32 }), false],
    ['not RIFF', new Uint8Array(64), false],
  ])('%s → kept as received: %s', (_name, bytes, plain) => {
    expect(isPlainPcm16Wav(bytes)).toBe(plain);
    const decoded = { samples: new Float32Array([0.5, -0.25]), sampleRate: 16000 };
    const out = datasetWav(bytes, decoded);
    if (plain) expect(out).toBe(bytes);
    else expect(decodeWav(out)).toMatchObject({ sampleRate: 16000, channels: 1, encoding: 'pcm_s16le', samples: new Float32Array([0.5, -0.25]) });
  });

  it('property: 16-bit samples re-headed come back sample for sample; anything else is clamped into 16 bits', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: -32768, max: 32767 }), { minLength: 1, maxLength: 200 }), fc.integer({ min: 1000, max: 96000 }), (ints, rate) => {
      const samples = Float32Array.from(ints, (x) => x / 32768);
      const back = decodeWav(encodeWav16(samples, rate));
      expect(back.sampleRate).toBe(rate);
      expect(Array.from(back.samples, (v) => Math.round(v * 32768))).toEqual(ints);
    }));
    const loud = decodeWav(encodeWav16(new Float32Array([2, -2, 1]), 8000));
    expect(Array.from(loud.samples, (v) => Math.round(v * 32768))).toEqual([32767, -32768, 32767]);
  });
});
