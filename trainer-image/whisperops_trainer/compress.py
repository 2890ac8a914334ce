"""Model compression (spec.compression): a distilled student built from the teacher's layers, and the
distillation loss. The student is an ordinary WhisperForConditionalGeneration with fewer layers and/or
a narrower feed-forward block, so training, evaluation, ONNX export, INT8 and the edge agent handle it
unchanged."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class StudentError(ValueError):
    """The requested student cannot be cut from the model (more layers or a wider FFN than it has)."""


def spread(n_teacher: int, n_student: int) -> list[int]:
    """Teacher layers a student of n_student layers starts from: spread evenly from the first to the
    last (2 of 4: [0, 3]; 3 of 12: [0, 6, 11]); one layer keeps the last."""
    if not 1 <= n_student <= n_teacher:
        raise StudentError(f"a student of {n_student} layers cannot be cut from {n_teacher}")
    if n_student == 1:
        return [n_teacher - 1]
    return [round(i * (n_teacher - 1) / (n_student - 1)) for i in range(n_student)]


def ffn_keep(fc1_w, fc2_w, k: int):
    """Indices (sorted) of the k feed-forward neurons with the largest ||fc1 row|| · ||fc2 column||."""
    import torch

    score = fc1_w.norm(dim=1) * fc2_w.norm(dim=0)
    return torch.sort(torch.topk(score, k).indices).values


@dataclass
class StudentPlan:
    encoder_layers: list[int]
    decoder_layers: list[int]
    ffn_dim: int

    def to_json(self) -> dict[str, Any]:
        return {"encoderLayers": self.encoder_layers, "decoderLayers": self.decoder_layers, "ffnDim": self.ffn_dim}


_LAYER = re.compile(r"^model\.(encoder|decoder)\.layers\.(\d+)\.(.*)$")


def make_student(model, encoder_layers: int | None = None, decoder_layers: int | None = None,
                 ffn_dim: int | None = None):
    """(student, plan): a copy of `model` (a WhisperForConditionalGeneration) with the given numbers
    of layers and FFN width, every weight taken from the model — layers by spread(), FFN neurons by
    ffn_keep() per layer; embeddings, convolutions, positions and final norms as they are."""
    import torch
    from transformers import WhisperForConditionalGeneration

    cfg = model.config
    n_enc, n_dec = int(cfg.encoder_layers), int(cfg.decoder_layers)
    if cfg.encoder_ffn_dim != cfg.decoder_ffn_dim and ffn_dim is not None:
        raise StudentError("ffnDim needs a model whose encoder and decoder FFNs have the same width")
    width = int(ffn_dim or cfg.encoder_ffn_dim)
    if width > min(cfg.encoder_ffn_dim, cfg.decoder_ffn_dim):
        raise StudentError(f"ffnDim {width} is wider than the model's {cfg.encoder_ffn_dim}")
    plan = StudentPlan(spread(n_enc, encoder_layers or n_enc), spread(n_dec, decoder_layers or n_dec), width)
    scfg = copy.deepcopy(cfg)
    scfg.encoder_layers, scfg.decoder_layers = len(plan.encoder_layers), len(plan.decoder_layers)
    if ffn_dim is not None:
        scfg.encoder_ffn_dim = scfg.decoder_ffn_dim = width
    student = WhisperForConditionalGeneration(scfg).to(torch.float32)
    src = model.state_dict()
    keep_cache: dict[str, Any] = {}
    out: dict[str, Any] = {}
    for name, p in student.state_dict().items():
        m = _LAYER.match(name)
        if not m:
            out[name] = src[name].detach().clone()
            continue
        side, i, rest = m.group(1), int(m.group(2)), m.group(3)
        t = (plan.encoder_layers if side == "encoder" else plan.decoder_layers)[i]
        prefix = f"model.{side}.layers.{t}."
        w = src[prefix + rest]
        if rest.startswith(("fc1.", "fc2.")) and w.shape != p.shape:
            if prefix not in keep_cache:
                keep_cache[prefix] = ffn_keep(src[prefix + "fc1.weight"], src[prefix + "fc2.weight"], width)
            idx = keep_cache[prefix]
            w = w.index_select(1, idx) if rest == "fc2.weight" else w.index_select(0, idx)
        out[name] = w.detach().clone()
    student.load_state_dict(out, strict=True)
    if cfg.tie_word_embeddings:
        student.tie_weights()
    student.generation_config = copy.deepcopy(model.generation_config)
    return student, plan


def save_student(base_dir: Path, out_dir: Path, encoder_layers: int | None, decoder_layers: int | None,
                 ffn_dim: int | None) -> StudentPlan:
    """Cut a student from the model in base_dir and save it (HF layout + tokenizer files) to out_dir."""
    import torch
    from transformers import WhisperForConditionalGeneration

    from .export import copy_hf_side_files

    model = WhisperForConditionalGeneration.from_pretrained(str(base_dir), dtype=torch.float32)
    student, plan = make_student(model, encoder_layers, decoder_layers, ffn_dim)
    out_dir.mkdir(parents=True, exist_ok=True)
    student.save_pretrained(str(out_dir), safe_serialization=True)
    copy_hf_side_files(base_dir, out_dir)
    return plan


def distillation_loss(student_logits, teacher_logits, labels, ce_loss, temperature: float, kl_weight: float,
                      ce_weight: float):
    """ce_weight · CE(labels) + kl_weight · T² · KL(softmax(teacher/T) ‖ softmax(student/T)), the KL
    averaged over the label positions (labels != -100); T² keeps the gradient scale of the soft
    term independent of T (Hinton et al. 2015)."""
    import torch.nn.functional as F

    mask = labels != -100
    s = student_logits[mask].float() / temperature
    t = teacher_logits[mask].float() / temperature
    kl = F.kl_div(F.log_softmax(s, dim=-1), F.log_softmax(t, dim=-1), log_target=True, reduction="batchmean")
    return ce_weight * ce_loss + kl_weight * temperature * temperature * kl, kl


def count_params(model_dir: Path | str) -> int:
    """Parameters of the model in a folder (its config built on the meta device: no weights read)."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    from . import params

    with torch.device("meta"):
        m = WhisperForConditionalGeneration(WhisperConfig.from_pretrained(str(model_dir)))
    return params.count(m)[1]
