import numpy as np
import pytest
import torch

from whisperops_trainer import audio
from whisperops_trainer.augment import AugmentConfig, WaveAugmenter, add_noise, colored_noise, snr_db, speed_perturb
from whisperops_trainer.features import LogMel, spec_augment


def tone(seconds=2.0, f=220.0):
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32)


@pytest.mark.parametrize("factor", [0.9, 1.1, 1.0])
def test_speed_perturbation_changes_duration_by_the_factor(factor):
    x = tone()
    y = speed_perturb(x, factor)
    assert len(y) == pytest.approx(len(x) / factor, rel=0.01)


@pytest.mark.parametrize("target", [5.0, 10.0, 15.0])
@pytest.mark.parametrize("kind", ["white", "pink"])
def test_noise_is_mixed_at_the_requested_snr(target, kind):
    rng = np.random.default_rng(0)
    x = tone()
    y = add_noise(x, target, colored_noise(len(x), rng, kind))
    assert snr_db(x, y) == pytest.approx(target, abs=0.05)


def test_wave_augmenter_is_deterministic_per_rng_and_respects_ranges():
    cfg = AugmentConfig(speed=(0.9, 1.1), snr_db=(5, 15), noise_prob=1.0)
    aug = WaveAugmenter(cfg)
    x = tone()
    a = aug(x, np.random.default_rng([1, 2]))
    b = aug(x, np.random.default_rng([1, 2]))
    c = aug(x, np.random.default_rng([1, 3]))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert len(x) / 1.1 * 0.99 <= len(a) <= len(x) / 0.9 * 1.01
    off = WaveAugmenter(AugmentConfig(speed=(1.0, 1.0), noise_prob=0.0))
    assert np.array_equal(off(x, np.random.default_rng(0)), x)


def test_logmel_on_device_matches_the_feature_extractor(model_dir):
    xs = [tone(1.5, 300), tone(3.0, 500) * 0.1]
    ref = audio.log_mel(str(model_dir), xs)
    w = np.zeros((2, 160000), np.float32)
    for i, x in enumerate(xs):
        w[i, : len(x)] = x
    got = LogMel(str(model_dir), "cpu")(torch.from_numpy(w)).numpy()
    assert got.shape == ref.shape == (2, 80, 1000)
    assert np.abs(got - ref).max() < 1e-4


def test_spec_augment_masks_only_speech_frames_with_the_counting_rule():
    g = torch.Generator().manual_seed(0)
    feats = torch.ones(4, 80, 1000)
    valid = [300, 1000, 50, 5]
    out = spec_augment(feats, valid, g, mask_time_prob=0.2, mask_time_length=10, mask_feature_prob=0.25,
                       mask_feature_length=8)
    tmask = (out == 0).all(dim=1)  # a masked frame is zero in every bin... unless the bin mask is there too
    for i, v in enumerate(valid):
        zero_frames = tmask[i].nonzero().flatten()
        assert (zero_frames < max(v, 1)).all()
        if v > 10:
            # int(0.2 * v / 10 + U) masks of 10 frames each, possibly overlapping
            n_masked = int(zero_frames.numel())
            assert 0 < n_masked <= (int(0.2 * v / 10) + 1) * 10
        else:
            assert zero_frames.numel() == 0
    fzero = (out == 0).all(dim=2)
    assert all(int(fzero[i].sum()) <= (int(0.25 * 80 / 8) + 1) * 8 for i in range(4))
    assert int(fzero.sum()) > 0


def test_spec_augment_off_is_identity():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 80, 1000)
    assert torch.equal(spec_augment(x.clone(), [1000, 1000], g, 0.0, 10, 0.0, 10), x)
