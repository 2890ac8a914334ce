"""Batched log-mel features and SpecAugment in torch, on the training device (GPU when there is
one), so data-loader workers only read and augment waveforms. `log_mel` matches
transformers' WhisperFeatureExtractor (tested to 1e-4)."""

from __future__ import annotations

import numpy as np


class LogMel:
    def __init__(self, model_dir: str, device):
        import torch

        from .audio import feature_extractor

        fe = feature_extractor(model_dir)
        self.n_fft = int(fe.n_fft)
        self.hop = int(fe.hop_length)
        self.n_samples = int(fe.n_samples)
        self.device = device
        self.mel = torch.from_numpy(np.asarray(fe.mel_filters, dtype=np.float32)).to(device)  # [n_freq, n_mels]
        self.window = torch.hann_window(self.n_fft, device=device)

    def __call__(self, wave):
        """wave: [B, n_samples] float tensor on self.device -> [B, n_mels, n_samples // hop]."""
        import torch

        stft = torch.stft(wave.float(), self.n_fft, self.hop, window=self.window, return_complex=True)
        mag = stft[..., :-1].abs() ** 2
        mel = self.mel.T @ mag
        log_spec = torch.clamp(mel, min=1e-10).log10()
        mx = log_spec.amax(dim=(1, 2), keepdim=True)
        log_spec = torch.maximum(log_spec, mx - 8.0)
        return (log_spec + 4.0) / 4.0


def spec_augment(feats, valid_frames, gen, mask_time_prob: float, mask_time_length: int,
                 mask_feature_prob: float, mask_feature_length: int):
    """SpecAugment on a batch [B, n_mels, T] (in place and returned). Per row, the number of time
    masks is int(prob * valid / length + U(0,1)) (the counting rule of wav2vec2/Whisper
    `_compute_mask_indices`), placed inside the row's first `valid_frames` frames (speech, not
    padding); frequency masks likewise over the mel bins. Masked values are set to 0, as
    transformers' Whisper SpecAugment does. `gen` is a torch.Generator on the CPU."""
    import torch

    b, n_mels, t = feats.shape
    dev = feats.device
    tmask = torch.zeros(b, t, dtype=torch.bool)
    fmask = torch.zeros(b, n_mels, dtype=torch.bool)
    for i in range(b):
        v = int(min(t, int(valid_frames[i])))
        if mask_time_prob > 0 and v > mask_time_length:
            k = int(mask_time_prob * v / mask_time_length + float(torch.rand(1, generator=gen)))
            for s in torch.randint(0, v - mask_time_length + 1, (k,), generator=gen).tolist():
                tmask[i, s:s + mask_time_length] = True
        if mask_feature_prob > 0 and n_mels > mask_feature_length:
            k = int(mask_feature_prob * n_mels / mask_feature_length + float(torch.rand(1, generator=gen)))
            for s in torch.randint(0, n_mels - mask_feature_length + 1, (k,), generator=gen).tolist():
                fmask[i, s:s + mask_feature_length] = True
    tmask = tmask.to(dev)
    fmask = fmask.to(dev)
    feats.masked_fill_(tmask[:, None, :], 0.0)
    feats.masked_fill_(fmask[:, :, None], 0.0)
    return feats
