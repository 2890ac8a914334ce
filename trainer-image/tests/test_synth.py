import numpy as np

from whisperops_trainer import audio, synth


def test_pick_voices_stays_in_the_configured_ranges():
    cfg = synth.SynthConfig(voices=["en-us", "en-gb"], wpm=(130, 200), pitch=(25, 75), seed=1)
    vs = synth.pick_voices(200, cfg)
    assert {v.voice.split("+")[0] for v in vs} == {"en-us", "en-gb"}
    assert all(130 <= v.wpm <= 200 and 25 <= v.pitch <= 75 for v in vs)
    assert len({v.voice for v in vs}) > 10  # variants are drawn too
    assert synth.pick_voices(200, cfg) == vs


def test_synthesize_writes_16k_audio_cached_by_text_and_voice(tmp_path):
    cfg = synth.SynthConfig(voices=["en-us"], seed=5)
    texts = ["the ebitda margin improved", "amortization of the collateral"]
    s1 = synth.synthesize(texts, "finance", tmp_path, cfg)
    assert [s.text for s in s1] == texts and all(s.scenario == "finance" for s in s1)
    x = audio.read_audio(s1[0].audio)
    assert 0.5 * audio.SAMPLE_RATE < len(x) < 5 * audio.SAMPLE_RATE
    assert np.abs(x).max() > 0.05
    mtime = [p.stat().st_mtime_ns for p in sorted(tmp_path.glob("*.wav"))]
    s2 = synth.synthesize(texts, "finance", tmp_path, cfg)
    assert [s.audio for s in s2] == [s.audio for s in s1]
    assert [p.stat().st_mtime_ns for p in sorted(tmp_path.glob("*.wav"))] == mtime


def test_speech_is_deterministic_for_text_voice_speed_pitch():
    v = synth.Voice("en-gb+m3", 170, 50)
    a, b = synth.speak("net present value", v), synth.speak("net present value", v)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, synth.speak("net present value", synth.Voice("en-gb+m3", 140, 50)))


def test_too_long_utterances_are_dropped(tmp_path):
    long = " ".join(["amortization"] * 40)
    out = synth.synthesize([long, "short one"], "finance", tmp_path, synth.SynthConfig(voices=["en-us"], wpm=(130, 130)))
    assert [s.text for s in out] == ["short one"]
