"""Model compression (spec.compression): a distilled student built from the teacher's layers, and the
distillation loss. The student is an ordinary WhisperForConditionalGeneration with fewer layers and/or
a narrower feed-forward block, so training, evaluation, ONNX export, INT8 and the edge agent handle it
unchanged."""

from __future__ import annotations

import contextlib
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


def ffn_keep(fc1_w, fc2_w, k: int, activation=None):
    """Indices (sorted) of the k feed-forward neurons with the largest ||fc1 row|| · ||fc2 column||, or,
    given each neuron's mean |activation| on data (the input of fc2), activation · ||fc2 column||."""
    import torch

    score = (fc1_w.norm(dim=1) if activation is None else activation) * fc2_w.norm(dim=0)
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
                 ffn_dim: int | None = None, ffn_activation: dict[str, Any] | None = None):
    """(student, plan): a copy of `model` (a WhisperForConditionalGeneration) with the given numbers
    of layers and FFN width, every weight taken from the model — layers by spread(), FFN neurons by
    ffn_keep() per layer (by weight norm, or by `ffn_activation`: mean |fc2 input| per neuron, keyed by
    the model's layer prefix "model.{encoder|decoder}.layers.{i}."); embeddings, convolutions, positions
    and final norms as they are."""
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
    lay = layout_of_config(cfg)
    if lay:  # a head-pruned teacher: the student's layers take their heads' shapes
        slay = {"encoder": [lay["encoder"][i] for i in plan.encoder_layers],
                "decoder": [lay["decoder"][i] for i in plan.decoder_layers],
                "cross": [lay["cross"][i] for i in plan.decoder_layers]}
        if hasattr(scfg, LEGACY_HEADS_KEY):
            delattr(scfg, LEGACY_HEADS_KEY)
        setattr(scfg, HEADS_KEY, slay)
    student = WhisperForConditionalGeneration(scfg).to(torch.float32)
    if lay:
        apply_head_layout(student, slay)
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
                keep_cache[prefix] = ffn_keep(src[prefix + "fc1.weight"], src[prefix + "fc2.weight"], width,
                                              (ffn_activation or {}).get(prefix))
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

    from .export import copy_hf_side_files

    model = load_whisper(base_dir, dtype=torch.float32)
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


def layer_pairs(n_teacher: int, n_student: int) -> list[tuple[int, int]]:
    """(student hidden-state index, teacher hidden-state index) pairs the hidden-state term matches. In
    HF's hidden_states tuples index k is the input of layer k (index 0 the embeddings' output) and the
    last index the final layer's output after the stack's layer norm. Student layer i takes over the
    teacher's layers from spread()[i] up to the next kept one, so its output is matched with the input of
    the teacher layer student layer i + 1 is initialised from — the input that layer was trained on —
    and the last student layer with the teacher's final output (2 of 4, layers 0 and 3: student layer 0
    against the output of teacher layer 2, layer 1 against the final output)."""
    kept = spread(n_teacher, n_student)
    return [(i + 1, kept[i + 1]) for i in range(n_student - 1)] + [(n_student, n_teacher)]


def hidden_state_loss(student_out, teacher_out, labels):
    """Mean over the matched hidden states (encoder and decoder, layer_pairs()) of the normalised squared error
    ||h_student - h_teacher||² / ||h_teacher||², over every encoder frame and over the decoder's label
    positions (labels != -100); both outputs from forward(..., output_hidden_states=True). Normalising by
    the teacher's energy keeps deep residual streams (larger norms) from dominating the mean
    (intermediate-layer distillation in the manner of TinyBERT, Jiao et al. 2020)."""
    import torch

    mask = (labels != -100).unsqueeze(-1)
    terms = []
    for side, w in (("encoder", 1.0), ("decoder", mask.float())):
        hs_s = getattr(student_out, f"{side}_hidden_states")
        hs_t = getattr(teacher_out, f"{side}_hidden_states")
        if hs_s is None or hs_t is None:
            raise ValueError("hidden_state_loss needs forward(..., output_hidden_states=True) on both models")
        if hs_s[-1].shape[-1] != hs_t[-1].shape[-1]:
            raise ValueError(f"hidden-state distillation needs the teacher's width ({hs_t[-1].shape[-1]}) to be "
                             f"the student's ({hs_s[-1].shape[-1]})")
        for si, ti in layer_pairs(len(hs_t) - 1, len(hs_s) - 1):
            s, t = hs_s[si].float(), hs_t[ti].float()
            terms.append(((s - t).pow(2) * w).sum() / (t.pow(2) * w).sum().clamp_min(1e-12))
    return torch.stack(terms).mean()


def count_params(model_dir: Path | str) -> int:
    """Parameters of the model in a folder (its config built on the meta device: no weights read)."""
    from . import params

    return params.count(build_empty(model_dir, meta=True))[1]


# --- structured attention-head pruning (encoder self, decoder self and cross-attention) -----------
#
# Heads are removed from all three kinds of attention: the encoder's self-attention ("encoder"), the
# decoder's self-attention ("decoder") and its cross-attention over the encoder output ("cross"). Every
# attention block keeps at least one head: a block with no head would be a zero-width projection
# (out_proj adds only its bias), which the HF attention code, the ONNX export and the agent's cache
# would all have to special-case, and the WER cost of emptying a block is large. A pruned model records
# its heads per layer and kind in config.json (HEADS_KEY: {"encoder": [...], "decoder": [...],
# "cross": [...]}); load_whisper() rebuilds the smaller projections before it loads the weights, which
# from_pretrained() cannot do; the ONNX export gives each decoder layer's past/present key/value its own
# head count (export.export_onnx), and the edge agent sizes its cache per layer from this key and checks
# it against the decoder graph's input shapes. Models from before (encoder heads only) carry
# LEGACY_HEADS_KEY, which is still read.

HEADS_KEY = "whisperops_attention_heads"
LEGACY_HEADS_KEY = "whisperops_encoder_heads"
KINDS = ("encoder", "decoder", "cross")
# Weights on each kind's (per-block normalised) importance in the global ranking. A decoder
# self-attention head costs one 64-wide slice of four 256×256 products per generated token: removing it
# saves no measurable time (a decoder step's time on CPU is per-node overhead, not FLOPs), while an
# encoder head is 2 × 500 × 500 × 64 score MACs + its projections over 500 frames per window and a
# cross-attention head its key/value projection over 500 frames at step 0 — so decoder self-attention
# heads count double and go only when clearly unimportant (trainer-image/README.md, Compression).
KIND_WEIGHTS = {"encoder": 1.0, "decoder": 2.0, "cross": 1.0}

def _shrink_attention(attn, keep) -> None:
    """Keep the heads `keep` (sorted indices) of a WhisperAttention: q/k/v rows and out_proj columns."""
    import torch

    hd = attn.head_dim
    idx = torch.cat([torch.arange(h * hd, (h + 1) * hd) for h in keep]) if len(keep) else torch.zeros(0, dtype=torch.long)

    def rows(lin):
        new = torch.nn.Linear(lin.in_features, len(idx), bias=lin.bias is not None)
        with torch.no_grad():
            new.weight.copy_(lin.weight.index_select(0, idx))
            if lin.bias is not None:
                new.bias.copy_(lin.bias.index_select(0, idx))
        return new

    attn.q_proj, attn.k_proj, attn.v_proj = rows(attn.q_proj), rows(attn.k_proj), rows(attn.v_proj)
    out = torch.nn.Linear(len(idx), attn.out_proj.out_features, bias=attn.out_proj.bias is not None)
    with torch.no_grad():
        out.weight.copy_(attn.out_proj.weight.index_select(1, idx))
        if attn.out_proj.bias is not None:
            out.bias.copy_(attn.out_proj.bias)
    attn.out_proj = out
    attn.num_heads = len(keep)


def attention_blocks(model) -> list[tuple[str, int, Any]]:
    """(kind, layer, WhisperAttention) of every attention block: encoder self, decoder self, cross."""
    enc = [("encoder", i, layer.self_attn) for i, layer in enumerate(model.model.encoder.layers)]
    dec = [("decoder", i, layer.self_attn) for i, layer in enumerate(model.model.decoder.layers)]
    cross = [("cross", i, layer.encoder_attn) for i, layer in enumerate(model.model.decoder.layers)]
    return enc + dec + cross


def head_layout(model) -> dict[str, list[int]]:
    """Heads per layer of each kind: {"encoder": [...], "decoder": [...], "cross": [...]}."""
    out: dict[str, list[int]] = {k: [] for k in KINDS}
    for kind, _, attn in attention_blocks(model):
        out[kind].append(int(attn.num_heads))
    return out


def encoder_heads(model) -> list[int]:
    """Heads of every encoder self-attention."""
    return head_layout(model)["encoder"]


def layout_of_config(cfg) -> dict[str, list[int]] | None:
    """The pruned layout a config (WhisperConfig or config.json dict) records, None for an unpruned
    model; a legacy encoder-only layout gets the config's uniform decoder and cross heads."""
    get = cfg.get if isinstance(cfg, dict) else (lambda k, d=None: getattr(cfg, k, d))
    lay = get(HEADS_KEY)
    if lay:
        missing = [k for k in KINDS if k not in lay]
        if missing:
            raise ValueError(f"config {HEADS_KEY} lacks {missing}")
        return {k: [int(h) for h in lay[k]] for k in KINDS}
    legacy = get(LEGACY_HEADS_KEY)
    if legacy:
        n_dec, h_dec = int(get("decoder_layers")), int(get("decoder_attention_heads"))
        return {"encoder": [int(h) for h in legacy], "decoder": [h_dec] * n_dec, "cross": [h_dec] * n_dec}
    return None


def apply_head_layout(model, layout: dict[str, list[int]] | list[int]) -> None:
    """Give the attention blocks of a freshly built model the head counts of `layout` (a list: encoder
    heads only, the legacy form); weights follow from a state dict."""
    if isinstance(layout, list):
        layout = {"encoder": layout}
    for kind, i, attn in attention_blocks(model):
        heads = layout.get(kind)
        if heads is None:
            continue
        if len(heads) != sum(1 for k, _, _ in attention_blocks(model) if k == kind):
            raise ValueError(f"layout {kind} has {len(heads)} layers, the model {kind} has a different number")
        if heads[i] != attn.num_heads:
            _shrink_attention(attn, list(range(heads[i])))


def build_empty(model_dir: Path | str, meta: bool = False):
    """The model of a folder without its weights (on the meta device when meta), pruned layout applied."""
    import contextlib

    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    cfg = WhisperConfig.from_pretrained(str(model_dir))
    with torch.device("meta") if meta else contextlib.nullcontext():
        m = WhisperForConditionalGeneration(cfg)
        lay = layout_of_config(cfg)
        if lay:
            apply_head_layout(m, lay)
    return m


def load_whisper(model_dir: Path | str, dtype=None):
    """WhisperForConditionalGeneration.from_pretrained, also for a head-pruned model."""
    import torch
    from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

    dtype = dtype or torch.float32
    cfg = WhisperConfig.from_pretrained(str(model_dir))
    if not layout_of_config(cfg):
        return WhisperForConditionalGeneration.from_pretrained(str(model_dir), dtype=dtype)
    from safetensors.torch import load_file

    m = build_empty(model_dir)
    sd = load_file(str(Path(model_dir) / "model.safetensors"))
    missing, unexpected = m.load_state_dict(sd, strict=False)
    if unexpected or set(missing) - {"proj_out.weight"}:
        raise ValueError(f"pruned model {model_dir}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    m.tie_weights()
    if (Path(model_dir) / "generation_config.json").is_file():
        m.generation_config = GenerationConfig.from_pretrained(str(model_dir))
    return m.to(dtype).eval()


@contextlib.contextmanager
def head_masks(model, masks):
    """Multiply each head's output by its mask entry before its block's out_proj while inside (one mask
    tensor of num_heads per attention_blocks() entry)."""
    hooks = []
    for (_, _, attn), m in zip(attention_blocks(model), masks):
        hd = attn.head_dim

        def pre(mod, args, m=m, hd=hd):
            x = args[0]
            b, t, _ = x.shape
            return ((x.view(b, t, -1, hd) * m[None, None, :, None]).view(b, t, -1),)

        hooks.append(attn.out_proj.register_forward_pre_hook(pre))
    try:
        yield
    finally:
        for h in hooks:
            h.remove()


def head_importance(model, batches, device="cpu"):
    """|Σ ∂loss/∂m_h| per head of every attention block (attention_blocks order: encoder self, decoder
    self, cross; Michel et al. 2019): a mask m = 1 multiplies each head's output before out_proj; the
    gradient says how much the loss depends on the head. Each block's scores are normalised to unit L2
    norm. batches: iterable of (input_features, decoder_input_ids, labels)."""
    import torch

    masks = [torch.ones(attn.num_heads, device=device, requires_grad=True) for _, _, attn in attention_blocks(model)]
    model.eval()
    score = [torch.zeros(len(m), device=device) for m in masks]
    with head_masks(model, masks):
        for feats, dec, labels in batches:
            loss = model(input_features=feats.to(device), decoder_input_ids=dec.to(device), labels=labels.to(device)).loss
            grads = torch.autograd.grad(loss, masks)
            for s, g in zip(score, grads):
                s += g.detach().abs()
    return [s / (s.norm() + 1e-12) for s in score]


ABLATION_ROUND = 4  # heads removed per round of the greedy ablation


def heads_by_ablation(model, batches, fraction: float, weights=None, device="cpu", round_size: int = ABLATION_ROUND,
                      on_round=None) -> list[list[int]]:
    """Per block, the sorted indices of the heads kept after greedy backward elimination on data: each
    round masks every remaining head alone (a block's last head is never a candidate), measures the
    loss on `batches` (a list of (input_features, decoder_input_ids, labels)) without it, and removes the
    round_size heads whose absence raises the loss least — with the heads already removed still masked,
    so each round sees what the earlier removals did (the one-pass gradient estimate cannot). weights
    (one per block) scale a rise in loss (÷ for a fall), as in heads_to_keep. Decoder-side candidates
    reuse the round's encoder output. Cost: about (heads − removed/2) · removed / round_size loss
    evaluations of `batches`."""
    import torch

    blocks = attention_blocks(model)
    w = weights or [1.0] * len(blocks)
    masks = [torch.ones(attn.num_heads, device=device) for _, _, attn in blocks]
    n_remove = int(round(fraction * sum(len(m) for m in masks)))
    batches = [(f.to(device), d.to(device), lab.to(device)) for f, d, lab in batches]
    model.eval()

    def loss(enc=None) -> float:
        tot, n = 0.0, 0
        for i, (f, d, lab) in enumerate(batches):
            kw = {"encoder_outputs": (enc[i],)} if enc is not None else {"input_features": f}
            tot += float(model(decoder_input_ids=d, labels=lab, **kw).loss) * len(d)
            n += len(d)
        return tot / max(n, 1)

    removed = 0
    with torch.no_grad(), head_masks(model, masks):
        while removed < n_remove:
            enc = [model.model.encoder(f).last_hidden_state for f, _, _ in batches]
            now = loss(enc)
            cands = []
            for bi, ((kind, _, _), m) in enumerate(zip(blocks, masks)):
                if int(m.sum()) <= 1:
                    continue
                for h in range(len(m)):
                    if m[h] == 0:
                        continue
                    m[h] = 0
                    rise = loss(None if kind == "encoder" else enc) - now
                    m[h] = 1
                    cands.append((rise * w[bi] if rise > 0 else rise / w[bi], bi, h))
            if not cands:
                break
            taken = 0
            for _, bi, h in sorted(cands):
                if taken >= min(round_size, n_remove - removed):
                    break
                if int(masks[bi].sum()) > 1:
                    masks[bi][h] = 0
                    taken += 1
            removed += taken
            if on_round:
                on_round(removed, now)
    return [[h for h in range(len(m)) if m[h] == 1] for m in masks]


def heads_to_keep(importance, fraction: float, weights=None) -> list[list[int]]:
    """Per block, the sorted indices of the heads kept when the least important round(fraction × all
    heads) are removed over all blocks together; every block keeps at least one head. weights (one per
    block, default 1) scale a block's scores before the ranking (a weight < 1 makes its heads go first)."""
    w = weights or [1.0] * len(importance)
    flat = sorted(((float(v) * w[li], li, h) for li, s in enumerate(importance) for h, v in enumerate(s.tolist())))
    n_remove = int(round(fraction * len(flat)))
    left = [len(s) for s in importance]
    removed: set[tuple[int, int]] = set()
    for _, li, h in flat:
        if len(removed) >= n_remove:
            break
        if left[li] > 1:
            removed.add((li, h))
            left[li] -= 1
    return [[h for h in range(len(s)) if (li, h) not in removed] for li, s in enumerate(importance)]


def prune_heads(model, keep: list[list[int]]) -> None:
    """Remove every head not in keep (one list per attention_blocks() entry) structurally and record
    the layout in the config."""
    blocks = attention_blocks(model)
    if len(keep) != len(blocks):
        raise ValueError(f"keep lists {len(keep)} blocks, the model has {len(blocks)}")
    for (_, _, attn), k in zip(blocks, keep):
        if not k:
            raise ValueError("every attention block keeps at least one head")
        if len(k) != attn.num_heads:
            _shrink_attention(attn, k)
    if hasattr(model.config, LEGACY_HEADS_KEY):
        delattr(model.config, LEGACY_HEADS_KEY)
    setattr(model.config, HEADS_KEY, head_layout(model))


def utterance_batches(model_dir: Path | str, samples, batch_size: int, seed: int = 42, device="cpu"):
    """(input_features, decoder_input_ids, labels) batches of `samples` as training sees them, without
    augmentation: the data head selection measures the loss on."""
    import torch
    from transformers import AutoTokenizer, WhisperConfig

    from .features import LogMel
    from .train import SpeechDataset, collate, prompt_ids

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    max_label = int(WhisperConfig.from_pretrained(str(model_dir)).max_target_positions) - len(prompt_ids(str(model_dir))) - 1
    ds = SpeechDataset(list(samples), str(model_dir), tok, None, seed, max_label)
    dl = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False,
                                     collate_fn=lambda b: collate(b, int(tok.eos_token_id)))
    logmel = LogMel(str(model_dir), device)
    for b in dl:
        with torch.no_grad():
            feats = logmel(b["audio"].to(device))
        yield feats, b["decoder_input_ids"], b["labels"]


def prune_dir(model_dir: Path, out_dir: Path, samples, fraction: float, n_samples: int, batch_size: int = 8,
              seed: int = 42, selection: str = "gradient", kind_weights: dict[str, float] | None = None) -> dict[str, Any]:
    """Choose on n_samples training utterances the fraction of all attention heads (encoder self, decoder
    self, cross) to remove — selection "gradient": the least important by head_importance, in one pass;
    "ablation": greedy elimination by the loss (heads_by_ablation); kind_weights (per kind, default
    KIND_WEIGHTS) scale each kind's scores — remove them, save the smaller model
    to out_dir. Returns {headsBefore, headsAfter, layout, kept, selection} and importance (gradient,
    per kind and layer) or lossByRound (ablation: the loss before each round)."""
    import torch

    from . import log
    from .export import copy_hf_side_files

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_whisper(model_dir).to(dev)
    model.config.apply_spec_augment = False
    picked = list(samples)[:n_samples]

    before = head_layout(model)
    blocks = attention_blocks(model)
    kw = {**KIND_WEIGHTS, **(kind_weights or {})}
    weights = [float(kw[kind]) for kind, _, _ in blocks]
    extra: dict[str, Any] = {}
    if selection == "ablation":
        rounds: list[float] = []

        def on_round(removed: int, loss: float) -> None:
            rounds.append(round(loss, 4))
            log.info("Head ablation round", removed=removed, loss_before=loss)

        keep = heads_by_ablation(model, list(utterance_batches(model_dir, picked, batch_size, seed, dev)), fraction, weights,
                                 dev, on_round=on_round)
        extra["lossByRound"] = rounds
    elif selection == "gradient":
        imp = head_importance(model, utterance_batches(model_dir, picked, batch_size, seed, dev), dev)
        keep = heads_to_keep(imp, fraction, weights)
    else:
        raise ValueError(f"unknown head selection {selection!r}")
    prune_heads(model, keep)
    after = head_layout(model)
    model.config.apply_spec_augment = load_whisper_config_flag(model_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.to("cpu").save_pretrained(str(out_dir), safe_serialization=True)
    copy_hf_side_files(Path(model_dir), out_dir)
    total = lambda lay: sum(sum(v) for v in lay.values())  # noqa: E731
    by_kind = lambda xs: {k: [x for (kind, _, _), x in zip(blocks, xs) if kind == k] for k in KINDS}  # noqa: E731
    info = {"headsBefore": total(before), "headsAfter": total(after), "layout": after, "kept": by_kind(keep),
            "selection": selection, "kindWeights": kw, **extra}
    if selection == "gradient":
        info["importance"] = by_kind([[round(float(v), 4) for v in s] for s in imp])
    log.info("Pruned attention heads", heads_before=total(before), heads_after=total(after), per_layer=after,
             samples=len(picked), selection=selection)
    return info


def load_whisper_config_flag(model_dir: Path) -> bool:
    import json

    return bool(json.loads((Path(model_dir) / "config.json").read_text()).get("apply_spec_augment", False))
