"""TF-IDF selection: keep the K samples of a pool whose text is most similar to a reference domain
text (a term list or sentences, one per line)."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def tfidf_scores(pool: Sequence[str], reference: Sequence[str]) -> np.ndarray:
    """Score of each pool text: the highest cosine similarity (word unigrams+bigrams, sublinear tf,
    IDF fitted on pool + reference) to any reference line."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    ref = [r for r in reference if r.strip()]
    if not pool or not ref:
        return np.zeros(len(pool))
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b[\w']+\b")
    vec.fit(list(pool) + ref)
    P = vec.transform(pool)
    R = vec.transform(ref)
    sims = (P @ R.T).tocsr()  # rows are L2-normalised: dot product == cosine
    return np.asarray(sims.max(axis=1).todense()).ravel()


def select_top_k(pool: Sequence[str], reference: Sequence[str], k: int) -> list[int]:
    """Indices of the k best-scoring pool texts, best first (ties keep pool order)."""
    scores = tfidf_scores(pool, reference)
    order = sorted(range(len(pool)), key=lambda i: (-scores[i], i))
    return order[: max(0, k)]
