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
    const { cos, sin, n, aRe, aIm } = this;
    for (const { p, ls, r, twCos, twSin } of this.stages) {
      const R = r * p; // residues before the stage
      for (let j = 0; j < ls; j++) {
        const tw = j * p;
        for (let k = 0; k < r; k++) {
          const inBase = j * R + k;
          // Twiddled inputs a_q = Y[j*R + q*r + k] * W_n^(q*j*r)
          aRe[0] = xRe[inBase];
          aIm[0] = xIm[inBase];
          for (let q = 1; q < p; q++) {
            const idx = inBase + q * r;
            const c = twCos[tw + q];
            const s = twSin[tw + q];
            const vr = xRe[idx];
            const vi = xIm[idx];
            aRe[q] = vr * c - vi * s;
            aIm[q] = vr * s + vi * c;
          }
          const outBase = j * r + k;
          const outStride = ls * r;
          if (p === 4) {
            const a0r = aRe[0] + aRe[2], a0i = aIm[0] + aIm[2];
            const a1r = aRe[0] - aRe[2], a1i = aIm[0] - aIm[2];
            const b0r = aRe[1] + aRe[3], b0i = aIm[1] + aIm[3];
            const b1r = aRe[1] - aRe[3], b1i = aIm[1] - aIm[3];
            yRe[outBase] = a0r + b0r;
            yIm[outBase] = a0i + b0i;
            yRe[outBase + outStride] = a1r + b1i;
            yIm[outBase + outStride] = a1i - b1r;
            yRe[outBase + 2 * outStride] = a0r - b0r;
            yIm[outBase + 2 * outStride] = a0i - b0i;
            yRe[outBase + 3 * outStride] = a1r - b1i;
            yIm[outBase + 3 * outStride] = a1i + b1r;
          } else if (p === 2) {
            yRe[outBase] = aRe[0] + aRe[1];
            yIm[outBase] = aIm[0] + aIm[1];
            yRe[outBase + outStride] = aRe[0] - aRe[1];
            yIm[outBase + outStride] = aIm[0] - aIm[1];
          } else if (p === 5) {
            // Radix-5 (forward): constants cos/sin of 2π/5 and 4π/5.
            const c1 = 0.30901699437494745, c2 = -0.8090169943749473;
            const s1 = 0.9510565162951535, s2 = 0.5877852522924732;
            const t1r = aRe[1] + aRe[4], t1i = aIm[1] + aIm[4];
            const t2r = aRe[2] + aRe[3], t2i = aIm[2] + aIm[3];
            const t3r = aRe[1] - aRe[4], t3i = aIm[1] - aIm[4];
            const t4r = aRe[2] - aRe[3], t4i = aIm[2] - aIm[3];
            const m1r = aRe[0] + c1 * t1r + c2 * t2r, m1i = aIm[0] + c1 * t1i + c2 * t2i;
            const m2r = aRe[0] + c2 * t1r + c1 * t2r, m2i = aIm[0] + c2 * t1i + c1 * t2i;
            // -i * (s1 t3 + s2 t4) and -i * (s2 t3 - s1 t4)
            const n1r = s1 * t3i + s2 * t4i, n1i = -(s1 * t3r + s2 * t4r);
            const n2r = s2 * t3i - s1 * t4i, n2i = -(s2 * t3r - s1 * t4r);
            yRe[outBase] = aRe[0] + t1r + t2r;
            yIm[outBase] = aIm[0] + t1i + t2i;
            yRe[outBase + outStride] = m1r + n1r;
            yIm[outBase + outStride] = m1i + n1i;
            yRe[outBase + 2 * outStride] = m2r + n2r;
            yIm[outBase + 2 * outStride] = m2i + n2i;
            yRe[outBase + 3 * outStride] = m2r - n2r;
            yIm[outBase + 3 * outStride] = m2i - n2i;
            yRe[outBase + 4 * outStride] = m1r - n1r;
            yIm[outBase + 4 * outStride] = m1i - n1i;
          } else {
            const step = n / p;
            for (let s = 0; s < p; s++) {
              let accR = aRe[0];
              let accI = aIm[0];
              for (let q = 1; q < p; q++) {
                const w = ((q * s) % p) * step;
                const c = cos[w];
                const sn = sin[w];
                accR += aRe[q] * c - aIm[q] * sn;
                accI += aRe[q] * sn + aIm[q] * c;
              }
              yRe[outBase + s * outStride] = accR;
              yIm[outBase + s * outStride] = accI;
            }
          }
        }
      }
      [xRe, yRe] = [yRe, xRe];
      [xIm, yIm] = [yIm, xIm];
    }
    if (xRe !== re) {
      re.set(xRe);
      im.set(xIm);
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
  compute(x: ArrayLike<number>, offset: number, window: Float64Array, out: Float64Array): void {
    const h = this.n / 2;
    const { re, im, cos, sin } = this;
    for (let t = 0; t < h; t++) {
      re[t] = x[offset + 2 * t] * window[2 * t];
      im[t] = x[offset + 2 * t + 1] * window[2 * t + 1];
    }
    this.half.transform(re, im);
    // X[k] = E[k] + W^k O[k], E = (Z[k] + conj Z[h-k]) / 2, O = (Z[k] - conj Z[h-k]) / 2i
    for (let k = 0; k <= h; k++) {
      const k1 = k % h;
      const k2 = (h - k) % h;
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
