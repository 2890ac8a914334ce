// Word error counting for feedback and golden probes. The normaliser is the trainer's
// (trainer-image/whisperops_trainer/textnorm.py), rule for rule: Unicode NFKC, lower-case, curly
// apostrophes → '; every character other than a-z, 0-9 and ' becomes a space; apostrophes not between
// two letters are dropped; runs of spaces collapse; trimmed.
// WER over many requests = Σ errors / Σ reference words (so it aggregates across agents).

export function normalizeText(s: string): string {
  return s
    .normalize('NFKC')
    .toLowerCase()
    .replace(/[\u2018\u2019]/g, "'")
    .replace(/[^a-z0-9']+/g, ' ')
    .replace(/(?<![a-z])'|'(?![a-z])/g, '')
    .replace(/\s+/g, ' ')
    .trim();
}

export function words(s: string): string[] {
  const n = normalizeText(s);
  return n === '' ? [] : n.split(' ');
}

export interface WordErrors {
  substitutions: number;
  deletions: number;
  insertions: number;
  /** substitutions + deletions + insertions */
  errors: number;
  referenceWords: number;
}

/** Word-level Levenshtein alignment of `hypothesis` against `reference` (both normalised first). */
export function wordErrors(reference: string, hypothesis: string): WordErrors {
  const r = words(reference);
  const h = words(hypothesis);
  const cols = h.length + 1;
  // cost and the operation counts of one optimal path, row by row.
  let prev = new Array<[number, number, number, number]>(cols);
  for (let j = 0; j < cols; j++) prev[j] = [j, 0, 0, j];
  for (let i = 1; i <= r.length; i++) {
    const cur = new Array<[number, number, number, number]>(cols);
    cur[0] = [i, 0, i, 0];
    for (let j = 1; j < cols; j++) {
      const diag = prev[j - 1];
      const up = prev[j];
      const left = cur[j - 1];
      const same = r[i - 1] === h[j - 1];
      const sub: [number, number, number, number] = [diag[0] + (same ? 0 : 1), diag[1] + (same ? 0 : 1), diag[2], diag[3]];
      const del: [number, number, number, number] = [up[0] + 1, up[1], up[2] + 1, up[3]];
      const ins: [number, number, number, number] = [left[0] + 1, left[1], left[2], left[3] + 1];
      cur[j] = sub[0] <= del[0] && sub[0] <= ins[0] ? sub : del[0] <= ins[0] ? del : ins;
    }
    prev = cur;
  }
  const [errors, substitutions, deletions, insertions] = prev[cols - 1];
  return { errors, substitutions, deletions, insertions, referenceWords: r.length };
}
