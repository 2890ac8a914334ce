import json
from pathlib import Path

import pytest

from whisperops_trainer.evaluate import score, score_by_scenario
from whisperops_trainer.data import Sample
from whisperops_trainer.textnorm import normalize


@pytest.mark.parametrize("raw,want", [
    ("Hello, World!", "hello world"),
    ("  it's   the EBITDA\u2019s margin. ", "it's the ebitda's margin"),
    ("'quoted' words -- and dashes", "quoted words and dashes"),
    ("rock'n'roll", "rock'n'roll"),
    ("x86 64-bit", "x86 64 bit"),
    ("", ""),
])
def test_normalize(raw, want):
    assert normalize(raw) == want


# One normaliser truth: the edge agent's normalizeText must give exactly these too (edge-agent/src/text/wer.test.ts).
SHARED = json.loads((Path(__file__).resolve().parents[2] / "test" / "fixtures" / "normaliser-cases.json").read_text(encoding="utf-8"))["cases"]


def test_normalize_gives_the_shared_fixture_exactly():
    assert len(SHARED) >= 30
    assert [normalize(c["text"]) for c in SHARED] == [c["normalised"] for c in SHARED]


def test_wer_and_cer_are_corpus_level_on_normalised_text():
    s = score(["the cat sat", "on the mat"], ["The cat sat.", "on a mat"])
    assert s.wer == pytest.approx(1 / 6)
    assert s.words == 6 and s.n == 2
    # "the" -> "a": 3 character edits over 11 + 10 reference characters (spaces count)
    assert s.cer == pytest.approx(3 / 21)


def test_empty_hypothesis_counts_every_word_deleted():
    assert score(["one two three"], [""]).wer == pytest.approx(1.0)


def test_empty_references_are_skipped_and_all_empty_is_an_error():
    assert score(["", "a b"], ["x", "a b"]).wer == 0.0
    with pytest.raises(ValueError):
        score([""], ["x"])


def test_scores_grouped_by_scenario():
    samples = [Sample("a.wav", "buy bonds", "finance"), Sample("b.wav", "take aspirin", "medical"),
               Sample("c.wav", "sell bonds", "finance")]
    got = score_by_scenario(samples, ["buy bonds", "take aspirins", "sell bond"])
    assert set(got) == {"finance", "medical"}
    assert got["finance"].wer == pytest.approx(1 / 4)
    assert got["medical"].wer == pytest.approx(1 / 2)
