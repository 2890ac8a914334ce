// Mixed-radix complex FFT (Stockham autosort, decimation in time; radix 4 and 2 butterflies and a
// table-driven one for other primes), planned once per length, plus the power spectrum of a real
// signal of even length through one complex FFT of half the length. Whisper's n_fft = 400 → 200 = 4·2·5·5.

interface Stage {
  /** Twiddles W_n^(q·j·r) for j < ls, q < p, stored at [j·p + q] (cos, sin). */
  twCos: Float64Array;
  twSin: Float64Array;
  p: number;
  /** Sub-transform length before this stage. */
  ls: number;
  /** Residue count after this stage (n / (ls * p)). */
  r: number;
}

export class Fft {
  private readonly stages: Stage[] = [];
  private readonly cos: Float64Array;
  private readonly sin: Float64Array;
  private readonly bufRe: Float64Array;
  private readonly bufIm: Float64Array;
  private readonly aRe: Float64Array;
  private readonly aIm: Float64Array;

  constructor(readonly n: number) {
    const factors: number[] = [];
    let rest = n;
    for (const p of [4, 2, 3, 5]) {
      while (rest % p === 0) {
        factors.push(p);
        rest /= p;
      }
    }
    for (let p = 7; rest > 1; p += 2) {
      while (rest % p === 0) {
        factors.push(p);
        rest /= p;
      }
    }
    let ls = 1;
    for (const p of factors) {
      const r = n / (ls * p);
      const twCos = new Float64Array(ls * p);
      const twSin = new Float64Array(ls * p);
      for (let j = 0; j < ls; j++) {
        for (let q = 0; q < p; q++) {
          twCos[j * p + q] = Math.cos((-2 * Math.PI * ((q * j * r) % n)) / n);
          twSin[j * p + q] = Math.sin((-2 * Math.PI * ((q * j * r) % n)) / n);
        }
      }
      this.stages.push({ p, ls, r, twCos, twSin });
      ls *= p;
    }
    this.cos = new Float64Array(n);
    this.sin = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      this.cos[k] = Math.cos((-2 * Math.PI * k) / n);
      this.sin[k] = Math.sin((-2 * Math.PI * k) / n);
    }
    this.bufRe = new Float64Array(n);
    this.bufIm = new Float64Array(n);
    const maxP = Math.max(1, ...factors);
    this.aRe = new Float64Array(maxP);
    this.aIm = new Float64Array(maxP);
  }

  /** In-place forward transform of (re, im). */
  transform(re: Float64Array, im: Float64Array): void {
    let xRe = re;
    let xIm = im;
    let yRe = this.bufRe;
    let yIm = this.bufIm;
    for (const st of this.stages) {
      if (st.p === 4) radix4(st, xRe, xIm, yRe, yIm);
      else if (st.p === 2) radix2(st, xRe, xIm, yRe, yIm);
      else if (st.p === 5) radix5(st, xRe, xIm, yRe, yIm);
      else this.generic(st, xRe, xIm, yRe, yIm);
      [xRe, yRe] = [yRe, xRe];
      [xIm, yIm] = [yIm, xIm];
    }
    if (xRe !== re) {
      re.set(xRe);
      im.set(xIm);
    }
  }

  private generic({ p, ls, r, twCos, twSin }: Stage, xRe: Float64Array, xIm: Float64Array, yRe: Float64Array, yIm: Float64Array): void {
    const { cos, sin, n, aRe, aIm } = this;
    const R = r * p;
    const outStride = ls * r;
    const step = n / p;
    for (let j = 0; j < ls; j++) {
      for (let k = 0; k < r; k++) {
        const inBase = j * R + k;
        for (let q = 0; q < p; q++) {
          const vr = xRe[inBase + q * r];
          const vi = xIm[inBase + q * r];
          const c = twCos[j * p + q];
          const s = twSin[j * p + q];
          aRe[q] = vr * c - vi * s;
          aIm[q] = vr * s + vi * c;
        }
        const outBase = j * r + k;
        for (let s = 0; s < p; s++) {
          let accR = 0;
          let accI = 0;
          for (let q = 0; q < p; q++) {
            const w = ((q * s) % p) * step;
            accR += aRe[q] * cos[w] - aIm[q] * sin[w];
            accI += aRe[q] * sin[w] + aIm[q] * cos[w];
          }
          yRe[outBase + s * outStride] = accR;
          yIm[outBase + s * outStride] = accI;
        }
      }
    }
  }
}

// Stage kernels: input element q of butterfly (j, k) is X[j·R + q·r + k] times W_n^(q·j·r); outputs go to
// Y[j·r + k + s·ls·r]. Twiddles come from the stage's table at [j·p + q].

function radix2({ ls, r, twCos, twSin }: Stage, xRe: Float64Array, xIm: Float64Array, yRe: Float64Array, yIm: Float64Array): void {
  const R = 2 * r;
  const os = ls * r;
  for (let j = 0; j < ls; j++) {
    const c1 = twCos[j * 2 + 1], s1 = twSin[j * 2 + 1];
    for (let k = 0; k < r; k++) {
      const i0 = j * R + k;
      const i1 = i0 + r;
      const a0r = xRe[i0], a0i = xIm[i0];
      const a1r = xRe[i1] * c1 - xIm[i1] * s1, a1i = xRe[i1] * s1 + xIm[i1] * c1;
      const o = j * r + k;
      yRe[o] = a0r + a1r;
      yIm[o] = a0i + a1i;
      yRe[o + os] = a0r - a1r;
      yIm[o + os] = a0i - a1i;
    }
  }
}

function radix4({ ls, r, twCos, twSin }: Stage, xRe: Float64Array, xIm: Float64Array, yRe: Float64Array, yIm: Float64Array): void {
  const R = 4 * r;
  const os = ls * r;
  for (let j = 0; j < ls; j++) {
    const t = j * 4;
    const c1 = twCos[t + 1], s1 = twSin[t + 1];
    const c2 = twCos[t + 2], s2 = twSin[t + 2];
    const c3 = twCos[t + 3], s3 = twSin[t + 3];
    for (let k = 0; k < r; k++) {
      const i0 = j * R + k;
      const x0r = xRe[i0], x0i = xIm[i0];
      let vr = xRe[i0 + r], vi = xIm[i0 + r];
      const x1r = vr * c1 - vi * s1, x1i = vr * s1 + vi * c1;
      vr = xRe[i0 + 2 * r];
      vi = xIm[i0 + 2 * r];
      const x2r = vr * c2 - vi * s2, x2i = vr * s2 + vi * c2;
      vr = xRe[i0 + 3 * r];
      vi = xIm[i0 + 3 * r];
      const x3r = vr * c3 - vi * s3, x3i = vr * s3 + vi * c3;
      const a0r = x0r + x2r, a0i = x0i + x2i;
      const a1r = x0r - x2r, a1i = x0i - x2i;
      const b0r = x1r + x3r, b0i = x1i + x3i;
      const b1r = x1r - x3r, b1i = x1i - x3i;
      const o = j * r + k;
      yRe[o] = a0r + b0r;
      yIm[o] = a0i + b0i;
      yRe[o + os] = a1r + b1i;
      yIm[o + os] = a1i - b1r;
      yRe[o + 2 * os] = a0r - b0r;
      yIm[o + 2 * os] = a0i - b0i;
      yRe[o + 3 * os] = a1r - b1i;
      yIm[o + 3 * os] = a1i + b1r;
    }
  }
}

const C1 = 0.30901699437494745; // cos 2π/5
const C2 = -0.8090169943749473; // cos 4π/5
const S1 = 0.9510565162951535; // sin 2π/5
const S2 = 0.5877852522924732; // sin 4π/5

function radix5({ ls, r, twCos, twSin }: Stage, xRe: Float64Array, xIm: Float64Array, yRe: Float64Array, yIm: Float64Array): void {
  const R = 5 * r;
  const os = ls * r;
  for (let j = 0; j < ls; j++) {
    const t = j * 5;
    const c1 = twCos[t + 1], s1 = twSin[t + 1];
    const c2 = twCos[t + 2], s2 = twSin[t + 2];
    const c3 = twCos[t + 3], s3 = twSin[t + 3];
    const c4 = twCos[t + 4], s4 = twSin[t + 4];
    for (let k = 0; k < r; k++) {
      const i0 = j * R + k;
      const x0r = xRe[i0], x0i = xIm[i0];
      let vr = xRe[i0 + r], vi = xIm[i0 + r];
      const x1r = vr * c1 - vi * s1, x1i = vr * s1 + vi * c1;
      vr = xRe[i0 + 2 * r];
      vi = xIm[i0 + 2 * r];
      const x2r = vr * c2 - vi * s2, x2i = vr * s2 + vi * c2;
      vr = xRe[i0 + 3 * r];
      vi = xIm[i0 + 3 * r];
      const x3r = vr * c3 - vi * s3, x3i = vr * s3 + vi * c3;
      vr = xRe[i0 + 4 * r];
      vi = xIm[i0 + 4 * r];
      const x4r = vr * c4 - vi * s4, x4i = vr * s4 + vi * c4;
      const t1r = x1r + x4r, t1i = x1i + x4i;
      const t2r = x2r + x3r, t2i = x2i + x3i;
      const t3r = x1r - x4r, t3i = x1i - x4i;
      const t4r = x2r - x3r, t4i = x2i - x3i;
      const m1r = x0r + C1 * t1r + C2 * t2r, m1i = x0i + C1 * t1i + C2 * t2i;
      const m2r = x0r + C2 * t1r + C1 * t2r, m2i = x0i + C2 * t1i + C1 * t2i;
      const n1r = S1 * t3i + S2 * t4i, n1i = -(S1 * t3r + S2 * t4r);
      const n2r = S2 * t3i - S1 * t4i, n2i = -(S2 * t3r - S1 * t4r);
      const o = j * r + k;
      yRe[o] = x0r + t1r + t2r;
      yIm[o] = x0i + t1i + t2i;
      yRe[o + os] = m1r + n1r;
      yIm[o + os] = m1i + n1i;
      yRe[o + 2 * os] = m2r + n2r;
      yIm[o + 2 * os] = m2i + n2i;
      yRe[o + 3 * os] = m2r - n2r;
      yIm[o + 3 * os] = m2i - n2i;
      yRe[o + 4 * os] = m1r - n1r;
      yIm[o + 4 * os] = m1i - n1i;
    }
  }
}

/** |rfft(x)|² of a real signal of even length n (n/2 + 1 bins), through one complex FFT of length n/2. */
export class RealPowerSpectrum {
  private readonly half: Fft;
  private readonly re: Float64Array;
  private readonly im: Float64Array;
  private readonly cos: Float64Array;
  private readonly sin: Float64Array;

  constructor(readonly n: number) {
    if (n % 2 !== 0) throw new Error(`RealPowerSpectrum needs an even length, got ${n}`);
    const h = n / 2;
    this.half = new Fft(h);
    this.re = new Float64Array(h);
    this.im = new Float64Array(h);
    this.cos = new Float64Array(h + 1);
    this.sin = new Float64Array(h + 1);
    for (let k = 0; k <= h; k++) {
      this.cos[k] = Math.cos((-2 * Math.PI * k) / n);
      this.sin[k] = Math.sin((-2 * Math.PI * k) / n);
    }
  }

  /** Writes n/2 + 1 power values of `x` (length n, read from `offset`, multiplied by `window`) to `out`. */
  compute(x: Float32Array, offset: number, window: Float64Array, out: Float64Array): void {
    const h = this.n / 2;
    const { re, im, cos, sin } = this;
    for (let t = 0; t < h; t++) {
      re[t] = x[offset + 2 * t] * window[2 * t];
      im[t] = x[offset + 2 * t + 1] * window[2 * t + 1];
    }
    this.half.transform(re, im);
    // X[k] = E[k] + W^k O[k], E = (Z[k] + conj Z[h-k]) / 2, O = (Z[k] - conj Z[h-k]) / 2i
    for (let k = 0; k <= h; k++) {
      const k1 = k === h ? 0 : k;
      const k2 = k === 0 ? 0 : h - k;
      const zr = re[k1], zi = im[k1];
      const cr = re[k2], ci = -im[k2];
      const er = 0.5 * (zr + cr), ei = 0.5 * (zi + ci);
      // (z - c) / 2i = ((zi - ci) - i (zr - cr)) / 2
      const or = 0.5 * (zi - ci), oi = -0.5 * (zr - cr);
      const c = cos[k], s = sin[k];
      const xr = er + or * c - oi * s;
      const xi = ei + or * s + oi * c;
      out[k] = xr * xr + xi * xi;
    }
  }
}
