// Band-limited resampling by windowed-sinc interpolation (Kaiser window), polyphase for rational
// ratios. Quality comparable to scipy.signal.resample_poly / torchaudio's sinc resampler; the
// anti-aliasing low-pass sits at `rolloff` of the lower Nyquist frequency.

const ZERO_CROSSINGS = 16;
const ROLLOFF = 0.945;
const KAISER_BETA = 8.6;

function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const q = (x * x) / 4;
  for (let k = 1; k < 50; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

interface Plan {
  up: number;
  down: number;
  /** Half width of the kernel, in input samples. */
  halfWidth: number;
  taps: number;
  /** phases × taps kernel table, or undefined when there are too many phases to tabulate. */
  table: Float32Array | undefined;
  cutoff: number;
}

const plans = new Map<string, Plan>();
const I0_BETA = besselI0(KAISER_BETA);

function kernel(t: number, cutoff: number, halfWidth: number): number {
  // t: distance from the output instant to the input sample, in input samples.
  if (Math.abs(t) >= halfWidth) return 0;
  const x = t * cutoff;
  const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
  const r = t / halfWidth;
  return cutoff * sinc * (besselI0(KAISER_BETA * Math.sqrt(1 - r * r)) / I0_BETA);
}

function planFor(from: number, to: number): Plan {
  const key = `${from}:${to}`;
  const cached = plans.get(key);
  if (cached) return cached;
  const g = gcd(from, to);
  const up = to / g;
  const down = from / g;
  const cutoff = Math.min(1, to / from) * ROLLOFF; // relative to the input Nyquist (1 = fs_in / 2)
  const halfWidth = ZERO_CROSSINGS / cutoff;
  const taps = 2 * Math.ceil(halfWidth) + 1;
  let table: Float32Array | undefined;
  if (up <= 4096) {
    table = new Float32Array(up * taps);
    for (let phase = 0; phase < up; phase++) {
      const frac = phase / up; // output instant = base + frac (in input samples)
      const base = Math.ceil(halfWidth);
      for (let k = 0; k < taps; k++) table[phase * taps + k] = kernel(frac - (k - base), cutoff, halfWidth);
    }
  }
  const plan = { up, down, halfWidth, taps, table, cutoff };
  plans.set(key, plan);
  return plan;
}

/** Resamples mono `input` from `from` Hz to `to` Hz. Returns the input itself when the rates match. */
export function resample(input: Float32Array, from: number, to: number): Float32Array {
  if (from === to) return input;
  const plan = planFor(from, to);
  const { up, down, taps, table, cutoff, halfWidth } = plan;
  const outLen = Math.floor((input.length * up) / down);
  const out = new Float32Array(outLen);
  const base = Math.ceil(halfWidth);
  const n = input.length;
  for (let i = 0; i < outLen; i++) {
    const pos = i * down; // output instant, in units of 1/up input samples
    const idx = Math.floor(pos / up);
    const phase = pos - idx * up;
    const first = idx - base;
    let acc = 0;
    if (table) {
      const row = phase * taps;
      const kStart = Math.max(0, -first);
      const kEnd = Math.min(taps, n - first);
      for (let k = kStart; k < kEnd; k++) acc += input[first + k] * table[row + k];
    } else {
      const frac = phase / up;
      for (let k = 0; k < taps; k++) {
        const j = first + k;
        if (j >= 0 && j < n) acc += input[j] * kernel(frac - (k - base), cutoff, halfWidth);
      }
    }
    out[i] = acc;
  }
  return out;
}
