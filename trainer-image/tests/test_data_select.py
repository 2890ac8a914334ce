import json
import random
from collections import Counter

import pytest

from whisperops_trainer.data import (DatasetError, Sample, Stage, mix_replay, plan_curriculum, read_manifest,
                                     split_sentences, write_manifest)
from whisperops_trainer.select import select_top_k, tfidf_scores


def test_manifest_round_trip_and_relative_audio(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"audio": "a.wav", "text": "hello", "scenario": "finance"}) + "\n\n"
                 + json.dumps({"audio": "/abs/b.wav", "text": "world"}) + "\n")
    got = read_manifest(f"file://{m}", default_scenario="general")
    assert got[0].audio == str(tmp_path / "a.wav") and got[0].scenario == "finance"
    assert got[1].audio == "/abs/b.wav" and got[1].scenario == "general"
    out = tmp_path / "out.jsonl"
    write_manifest(out, got)
    assert read_manifest(str(out)) == got


@pytest.mark.parametrize("content,msg", [
    ("not json\n", "not JSON"),
    (json.dumps({"audio": 1, "text": "x", "scenario": "s"}) + "\n", "string fields"),
    (json.dumps({"audio": "a", "text": "x"}) + "\n", "scenario"),
    ("\n", "empty"),
])
def test_bad_manifests_are_invalid_input(tmp_path, content, msg):
    m = tmp_path / "m.jsonl"
    m.write_text(content)
    with pytest.raises(DatasetError, match=msg):
        read_manifest(str(m))


def test_missing_manifest_is_invalid_input(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        read_manifest(f"file://{tmp_path}/nope.jsonl")


def test_split_is_by_sentence_disjoint_and_deterministic():
    sents = [f"sentence {i}" for i in range(100)] * 2  # duplicates must not leak across the split
    tr, ev = split_sentences(sents, 0.2, seed=3)
    assert len(ev) == 20 and len(tr) == 80 and not set(tr) & set(ev)
    assert split_sentences(sents, 0.2, seed=3) == (tr, ev)
    assert split_sentences(sents, 0.2, seed=4) != (tr, ev)


@pytest.mark.parametrize("frac,n", [(0.8, 100), (0.5, 37), (1.0, 10), (0.0, 12)])
def test_replay_mix_has_the_requested_domain_fraction(frac, n):
    dom = [Sample(f"d{i}", "d", "finance") for i in range(7)]
    gen = [Sample(f"g{i}", "g", "general") for i in range(50)]
    out = mix_replay(dom, gen, frac, n, random.Random(0))
    c = Counter(s.scenario for s in out)
    assert len(out) == n and c["finance"] == round(n * frac)
    # domain samples cycle evenly: each used floor or ceil of its share
    per = Counter(s.audio for s in out if s.scenario == "finance")
    if per:
        assert max(per.values()) - min(per.values()) <= 1


def test_replay_without_general_data_is_all_domain():
    dom = [Sample("d", "d", "finance")]
    assert all(s.scenario == "finance" for s in mix_replay(dom, [], 0.5, 10, random.Random(0)))


def test_curriculum_plan_sizes_stages_by_domain_epochs():
    plan = plan_curriculum([Stage("warm", 0.5, 1), Stage("focus", 0.8, 2), Stage("replay-only", 0.0, 1)], 100)
    assert [n for _, n in plan] == [200, 250, 100]


def test_tfidf_selection_prefers_in_domain_text():
    finance = ["the ebitda margin improved", "amortization of the collateral", "the coupon on the bond"]
    general = ["i like to walk in the park", "the weather is nice today", "she sings a song", "a dog barks"]
    ref = ["ebitda", "amortization", "collateral", "coupon", "bond"]
    pool = general[:2] + finance + general[2:]
    top = select_top_k(pool, ref, 3)
    assert sorted(pool[i] for i in top) == sorted(finance)
    scores = tfidf_scores(pool, ref)
    assert all(scores[i] == 0 for i, t in enumerate(pool) if t in general)


def test_tfidf_selection_on_the_shared_corpora(shared_data):
    fin = (shared_data / "domain" / "finance_corpus.txt").read_text().splitlines()[:200]
    gen = (shared_data / "general" / "general_corpus.txt").read_text().splitlines()[:800]
    terms = (shared_data / "domain" / "finance_terms.txt").read_text().splitlines()
    pool = gen + fin
    top = select_top_k(pool, terms, 200)
    share = sum(1 for i in top if i >= len(gen)) / 200
    assert share >= 0.9
