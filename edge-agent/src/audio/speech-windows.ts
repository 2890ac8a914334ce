// Speech-following model windows (energy based): used by the inference worker to cut audio into
// windows, and on the HTTP thread to stream a file's transcription window by window (no ONNX Runtime here).

/**
 * Splits 16 kHz audio into model windows of at most `windowSamples`. Models trained on single utterances
 * that start at t = 0 (like tiny-whisper-synth) transcribe a window badly when it opens with silence or
 * holds several utterances, so windows follow speech: an energy detector (20 ms frames, threshold 40 dB
 * under the loudest frame) finds speech regions; a pause of `minPauseSeconds` or more ends a window;
 * each window keeps 100 ms of margin; a region longer than a window is cut at its quietest 20 ms in the
 * window's last 2 s. Audio with no frame above the threshold gives no window. Returns [start, end) ranges.
 */
export function splitWindows(audio: Float32Array, windowSamples: number, sampleRate: number, minPauseSeconds = 0.5): [number, number][] {
  const frame = Math.max(1, Math.round(0.02 * sampleRate));
  const nFrames = Math.ceil(audio.length / frame);
  const energy = new Float64Array(nFrames);
  let peak = 0;
  for (let f = 0; f < nFrames; f++) {
    let e = 0;
    const end = Math.min(audio.length, (f + 1) * frame);
    for (let i = f * frame; i < end; i++) e += audio[i] * audio[i];
    energy[f] = e / Math.max(1, end - f * frame);
    if (energy[f] > peak) peak = energy[f];
  }
  const threshold = Math.max(peak * 1e-4, 1e-9); // 40 dB under the peak (energy ratio)
  const margin = Math.round(0.1 * sampleRate);
  const pauseFrames = Math.max(1, Math.round((minPauseSeconds * sampleRate) / frame));
  // Speech regions in frames, split at pauses.
  const regions: [number, number][] = [];
  let start = -1;
  let lastSpeech = -1;
  for (let f = 0; f < nFrames; f++) {
    if (energy[f] < threshold) continue;
    if (start < 0) start = f;
    else if (f - lastSpeech > pauseFrames) {
      regions.push([start, lastSpeech + 1]);
      start = f;
    }
    lastSpeech = f;
  }
  if (start >= 0) regions.push([start, lastSpeech + 1]);
  const out: [number, number][] = [];
  const search = Math.min(Math.round(2 * sampleRate), Math.floor(windowSamples / 2));
  for (const [fs, fe] of regions) {
    let s = Math.max(0, fs * frame - margin);
    const e = Math.min(audio.length, fe * frame + margin);
    while (e - s > windowSamples) {
      const hardEnd = s + windowSamples;
      let best = hardEnd;
      let bestEnergy = Infinity;
      for (let f = hardEnd - frame; f >= hardEnd - search; f -= frame) {
        let en = 0;
        for (let i = f; i < f + frame; i++) en += audio[i] * audio[i];
        if (en < bestEnergy) {
          bestEnergy = en;
          best = f + Math.floor(frame / 2);
        }
      }
      out.push([s, best]);
      s = best;
    }
    if (e > s) out.push([s, e]);
  }
  return out;
}
