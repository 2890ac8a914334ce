// WAV (RIFF/WAVE) decoding: PCM 8/16/24/32-bit integer and IEEE float 32/64, WAVE_FORMAT_EXTENSIBLE,
// any sample rate, any channel count (averaged to mono). Anything else is refused with an
// AudioFormatError that names what was found, so the HTTP layer can answer a precise 4xx.

export type AudioErrorKind = 'empty' | 'unsupported_format' | 'unsupported_codec' | 'malformed' | 'too_long';

export class AudioFormatError extends Error {
  constructor(
    readonly kind: AudioErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'AudioFormatError';
  }
}

export interface DecodedAudio {
  /** Mono samples in [-1, 1] at `sampleRate`. */
  samples: Float32Array;
  sampleRate: number;
  /** Channels in the file (before averaging to mono). */
  channels: number;
  /** e.g. "pcm_s16le", "float32". */
  encoding: string;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const WAVE_FORMAT_PCM = 0x0001;
const WAVE_FORMAT_IEEE_FLOAT = 0x0003;
const WAVE_FORMAT_ALAW = 0x0006;
const WAVE_FORMAT_MULAW = 0x0007;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;
const CODEC_NAMES: Record<number, string> = {
  0x0002: 'Microsoft ADPCM',
  [WAVE_FORMAT_ALAW]: 'A-law',
  [WAVE_FORMAT_MULAW]: 'mu-law',
  0x0011: 'IMA ADPCM',
  0x0055: 'MPEG Layer 3',
};

/** Names a non-WAV container from its magic bytes, for the error message. */
export function sniffContainer(buf: Uint8Array): string | undefined {
  const ascii = (from: number, len: number): string => String.fromCharCode(...buf.subarray(from, from + len));
  if (buf.length >= 4 && ascii(0, 4) === 'OggS') return 'Ogg';
  if (buf.length >= 4 && ascii(0, 4) === 'fLaC') return 'FLAC';
  if (buf.length >= 3 && ascii(0, 3) === 'ID3') return 'MP3';
  if (buf.length >= 2 && buf[0] === 0xff && ((buf[1] ?? 0) & 0xe0) === 0xe0) return 'MPEG audio (MP3/AAC)';
  if (buf.length >= 8 && ascii(4, 4) === 'ftyp') return 'MP4/M4A';
  if (buf.length >= 4 && buf[0] === 0x1a && buf[1] === 0x45 && buf[2] === 0xdf && buf[3] === 0xa3) return 'WebM/Matroska';
  if (buf.length >= 4 && ascii(0, 4) === 'RIFX') return 'big-endian RIFX WAV';
  if (buf.length >= 4 && ascii(0, 4) === 'RF64') return 'RF64';
  if (buf.length >= 4 && ascii(0, 4) === 'FORM') return 'AIFF';
  return undefined;
}

interface Fmt {
  formatTag: number;
  channels: number;
  sampleRate: number;
  bitsPerSample: number;
  blockAlign: number;
}

export interface DecodeOptions {
  /** Refuse audio longer than this many seconds (checked from the header, before decoding). */
  maxDurationSeconds?: number;
}

export function decodeWav(input: Uint8Array, options: DecodeOptions = {}): DecodedAudio {
  if (input.length === 0) throw new AudioFormatError('empty', 'the uploaded file is empty');
  const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  const tag = (at: number): string => String.fromCharCode(input[at] ?? 0, input[at + 1] ?? 0, input[at + 2] ?? 0, input[at + 3] ?? 0);
  if (input.length < 12 || tag(0) !== 'RIFF' || tag(8) !== 'WAVE') {
    const found = sniffContainer(input);
    throw new AudioFormatError(
      'unsupported_format',
      found ? `unsupported audio container ${found}: only WAV (RIFF/WAVE) is accepted` : 'not a WAV file (no RIFF/WAVE header): only WAV is accepted',
    );
  }
  let fmt: Fmt | undefined;
  let data: Uint8Array | undefined;
  let pos = 12;
  while (pos + 8 <= input.length) {
    const id = tag(pos);
    const declared = view.getUint32(pos + 4, true);
    const start = pos + 8;
    const size = Math.min(declared, input.length - start);
    if (id === 'fmt ') {
      if (size < 16) throw new AudioFormatError('malformed', `WAV fmt chunk too short (${size} bytes)`);
      fmt = {
        formatTag: view.getUint16(start, true),
        channels: view.getUint16(start + 2, true),
        sampleRate: view.getUint32(start + 4, true),
        blockAlign: view.getUint16(start + 12, true),
        bitsPerSample: view.getUint16(start + 14, true),
      };
      if (fmt.formatTag === WAVE_FORMAT_EXTENSIBLE) {
        if (size < 40) throw new AudioFormatError('malformed', 'WAVE_FORMAT_EXTENSIBLE fmt chunk too short');
        // The sub-format GUID's first two bytes are the real format tag.
        fmt.formatTag = view.getUint16(start + 24, true);
      }
    } else if (id === 'data') {
      data = input.subarray(start, start + size);
      // Streaming writers leave the size at 0 or 0xFFFFFFFF: take what is there.
      if (declared === 0 || declared === 0xffffffff) data = input.subarray(start);
      break;
    }
    pos = start + declared + (declared % 2);
  }
  if (!fmt) throw new AudioFormatError('malformed', 'WAV file has no fmt chunk');
  if (!data) throw new AudioFormatError('malformed', 'WAV file has no data chunk');
  const { formatTag, channels, sampleRate, bitsPerSample } = fmt;
  let encoding: string;
  if (formatTag === WAVE_FORMAT_PCM && [8, 16, 24, 32].includes(bitsPerSample)) {
    encoding = bitsPerSample === 8 ? 'pcm_u8' : `pcm_s${bitsPerSample}le`;
  } else if (formatTag === WAVE_FORMAT_IEEE_FLOAT && (bitsPerSample === 32 || bitsPerSample === 64)) {
    encoding = `float${bitsPerSample}`;
  } else if (formatTag === WAVE_FORMAT_PCM || formatTag === WAVE_FORMAT_IEEE_FLOAT) {
    throw new AudioFormatError('unsupported_codec', `unsupported WAV sample size: ${bitsPerSample}-bit ${formatTag === WAVE_FORMAT_PCM ? 'PCM' : 'float'}`);
  } else {
    const name = CODEC_NAMES[formatTag] ?? `format tag 0x${formatTag.toString(16).padStart(4, '0')}`;
    throw new AudioFormatError('unsupported_codec', `unsupported WAV codec ${name}: only PCM (8/16/24/32-bit) and IEEE float (32/64-bit) are accepted`);
  }
  if (channels < 1 || channels > 32) throw new AudioFormatError('malformed', `invalid channel count ${channels}`);
  if (sampleRate < 1000 || sampleRate > 768000) throw new AudioFormatError('malformed', `unsupported sample rate ${sampleRate} Hz (1000..768000)`);
  const bytesPerSample = bitsPerSample / 8;
  const frameBytes = bytesPerSample * channels;
  const frames = Math.floor(data.length / frameBytes);
  if (frames === 0) throw new AudioFormatError('empty', 'the WAV file contains no audio samples');
  if (options.maxDurationSeconds !== undefined && frames / sampleRate > options.maxDurationSeconds) {
    throw new AudioFormatError('too_long', `audio is ${(frames / sampleRate).toFixed(1)} s long; the limit is ${options.maxDurationSeconds} s`);
  }
  const out = new Float32Array(frames);
  const inv = 1 / channels;
  // Fast path for the common 16-bit PCM (aligned typed-array view on little-endian hosts).
  if (encoding === 'pcm_s16le' && data.byteOffset % 2 === 0 && LITTLE_ENDIAN) {
    const pcm = new Int16Array(data.buffer, data.byteOffset, frames * channels);
    const scale = inv / 32768;
    if (channels === 1) for (let f = 0; f < frames; f++) out[f] = pcm[f] * scale;
    else
      for (let f = 0, o = 0; f < frames; f++) {
        let acc = 0;
        for (let c = 0; c < channels; c++) acc += pcm[o++];
        out[f] = acc * scale;
      }
    return { samples: out, sampleRate, channels, encoding };
  }
  const dv = new DataView(data.buffer, data.byteOffset, frames * frameBytes);
  const read = sampleReader(encoding, dv);
  for (let f = 0, off = 0; f < frames; f++) {
    let acc = 0;
    for (let c = 0; c < channels; c++, off += bytesPerSample) acc += read(off);
    out[f] = acc * inv;
  }
  return { samples: out, sampleRate, channels, encoding };
}

function sampleReader(encoding: string, dv: DataView): (offset: number) => number {
  switch (encoding) {
    case 'pcm_u8':
      return (o) => (dv.getUint8(o) - 128) / 128;
    case 'pcm_s16le':
      return (o) => dv.getInt16(o, true) / 32768;
    case 'pcm_s24le':
      return (o) => ((dv.getUint8(o) | (dv.getUint8(o + 1) << 8) | (dv.getInt8(o + 2) << 16)) / 8388608);
    case 'pcm_s32le':
      return (o) => dv.getInt32(o, true) / 2147483648;
    case 'float32':
      return (o) => dv.getFloat32(o, true);
    default:
      return (o) => dv.getFloat64(o, true);
  }
}

/**
 * Encodes mono float samples as a 16-bit PCM WAV (the dataset store's re-encoded samples, tests),
 * scaled by 32768 and clamped: 16-bit audio decoded here (x / 32768) comes back sample for sample.
 */
export function encodeWav16(samples: Float32Array, sampleRate: number): Uint8Array {
  const out = new Uint8Array(44 + samples.length * 2);
  const dv = new DataView(out.buffer);
  const put = (at: number, s: string): void => {
    for (let i = 0; i < s.length; i++) out[at + i] = s.charCodeAt(i);
  };
  put(0, 'RIFF');
  dv.setUint32(4, 36 + samples.length * 2, true);
  put(8, 'WAVE');
  put(12, 'fmt ');
  dv.setUint32(16, 16, true);
  dv.setUint16(20, WAVE_FORMAT_PCM, true);
  dv.setUint16(22, 1, true);
  dv.setUint32(24, sampleRate, true);
  dv.setUint32(28, sampleRate * 2, true);
  dv.setUint16(32, 2, true);
  dv.setUint16(34, 16, true);
  put(36, 'data');
  dv.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const v = Math.round((samples[i] ?? 0) * 32768);
    dv.setInt16(44 + i * 2, v > 32767 ? 32767 : v < -32768 ? -32768 : v, true);
  }
  return out;
}
