"""Datasets: JSONL manifests of {audio, text, scenario}, splits, replay mixing and curriculum stages."""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

from .uri import READ_SCHEMES, UnsupportedUri, resolve_relative, scheme, to_path


class DatasetError(ValueError):
    """Missing or malformed dataset: invalid input, not retried."""


@dataclass
class Sample:
    audio: str
    text: str
    scenario: str
    voice: str | None = None
    wpm: int | None = None
    pitch: int | None = None
    role: str | None = None  # speaker role (spec.compression.speakerRole), from the manifest's "role" or the voice

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def write_manifest(path: str | Path, samples: Iterable[Sample]) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for s in samples:
            f.write(json.dumps(s.to_json(), ensure_ascii=False) + "\n")
    tmp.replace(p)


def read_manifest(location: str, default_scenario: str | None = None, *, allow_empty: bool = False,
                  text: str | None = None) -> list[Sample]:
    """Read a JSONL manifest from a local path or URI. Relative audio paths are resolved against
    the manifest's own location; keys other than audio, text, scenario, voice, wpm, pitch and role
    are ignored. Raises DatasetError on missing files or bad lines (and on an empty manifest unless
    allow_empty)."""
    from .uri import read_text

    if text is None:
        try:
            text = read_text(location)
        except FileNotFoundError as e:
            raise DatasetError(f"dataset manifest not found: {location}") from e
    out: list[Sample] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DatasetError(f"{location}:{n}: not JSON: {e}") from e
        if not isinstance(obj, dict) or not isinstance(obj.get("audio"), str) or not isinstance(obj.get("text"), str):
            raise DatasetError(f"{location}:{n}: needs string fields 'audio' and 'text'")
        scen = obj.get("scenario", default_scenario)
        if not isinstance(scen, str) or not scen:
            raise DatasetError(f"{location}:{n}: needs a 'scenario'")
        audio = _audio_uri(location, n, obj["audio"])
        out.append(Sample(audio=audio, text=obj["text"], scenario=scen,
                          voice=obj.get("voice"), wpm=obj.get("wpm"), pitch=obj.get("pitch"),
                          role=obj.get("role") if isinstance(obj.get("role"), str) and obj.get("role") else None))
    if not out and not allow_empty:
        raise DatasetError(f"dataset manifest is empty: {location}")
    return out


def _audio_uri(location: str, n: int, ref: str) -> str:
    """The audio URI of a manifest line, resolved against the manifest; an unsupported scheme or a
    file:// URI naming another host is invalid input (DatasetError: exit 2, not retried), never a
    relative path that fails later and is retried."""
    raw = scheme(ref)
    if raw and len(raw) > 1 and raw not in READ_SCHEMES:
        raise DatasetError(f"{location}:{n}: audio {ref}: unsupported URI scheme {raw}:// (file://, pvc://, s3:// and http(s):// are)")
    audio = resolve_relative(location, ref)
    if scheme(audio) == "file":
        try:
            to_path(audio)
        except UnsupportedUri as e:
            raise DatasetError(f"{location}:{n}: audio {ref}: {e}") from e
    return audio


def read_manifests(location: str, default_scenario: str | None = None) -> list[Sample]:
    """A manifest URI, or a folder URI (ending in '/'): every *.jsonl manifest under it, recursively, in
    key order, each one's audio paths relative to itself — how the edge agents write feedback samples.
    An empty folder is no samples (the caller decides whether that is enough); a missing folder of a
    local path is DatasetError."""
    from concurrent.futures import ThreadPoolExecutor

    from .uri import is_folder, list_files, read_text

    if not is_folder(location):
        return read_manifest(location, default_scenario)
    try:
        files = list_files(location, (".jsonl",))
    except FileNotFoundError as e:
        raise DatasetError(f"dataset folder not found: {location}") from e
    with ThreadPoolExecutor(max_workers=8) as pool:
        texts = list(pool.map(read_text, files))
    out: list[Sample] = []
    for f, t in zip(files, texts):
        out.extend(read_manifest(f, default_scenario, allow_empty=True, text=t))
    return out


def split_sentences(sentences: Sequence[str], eval_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Split by *sentence* (never by utterance), so evaluation sentences are never trained on."""
    uniq = sorted(set(sentences))
    rng = random.Random(seed)
    rng.shuffle(uniq)
    n_eval = int(round(len(uniq) * eval_fraction))
    return uniq[n_eval:], uniq[:n_eval]


def mix_replay(domain: Sequence[Sample], general: Sequence[Sample], domain_fraction: float, n: int,
               rng: random.Random) -> list[Sample]:
    """n samples of which round(n * domain_fraction) come from `domain` and the rest from `general`
    (drawn without replacement while possible, cycling otherwise), shuffled."""
    if not 0.0 <= domain_fraction <= 1.0:
        raise ValueError("domain_fraction must be within [0, 1]")
    n_dom = int(round(n * domain_fraction)) if general else n
    n_gen = n - n_dom
    if n_dom and not domain:
        raise DatasetError("no in-domain samples to train on")

    def draw(pool: Sequence[Sample], k: int) -> list[Sample]:
        out: list[Sample] = []
        while len(out) < k:
            idx = list(range(len(pool)))
            rng.shuffle(idx)
            out.extend(pool[i] for i in idx[: k - len(out)])
        return out

    batch = draw(domain, n_dom) + (draw(general, n_gen) if n_gen else [])
    rng.shuffle(batch)
    return batch


@dataclass
class Stage:
    name: str
    domain_fraction: float
    epochs: float


def plan_curriculum(stages: Sequence[Stage], n_domain: int) -> list[tuple[Stage, int]]:
    """Samples per stage: an epoch is one pass over the in-domain set (replay is extra), so a stage of
    e epochs at domain fraction f holds ceil(e * n_domain / f) samples (n_domain*e if f == 0)."""
    plan = []
    for st in stages:
        if st.domain_fraction > 0:
            n = int(-(-st.epochs * n_domain // st.domain_fraction))
        else:
            n = int(round(st.epochs * n_domain))
        plan.append((st, max(1, n)))
    return plan
