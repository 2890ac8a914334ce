"""Speaker-role head (spec.compression.speakerRole): a small classifier on the encoder output, mean-pooled
over the frames that hold audio (not the zero padding of the model's window), trained jointly with ASR
(loss = ASR CE + lossWeight · role CE) and exported beside the ASR graphs as onnx/role_head.onnx.

Artifact layout: the head's weights in role_head.safetensors (training and a later fine-tune start from
them), its ONNX graph in onnx/role_head.onnx (inputs last_hidden_state [B, T, d_model] float32 and
valid_frames [B] int64 — encoder frames holding audio; output role_logits [B, R]), and the role names, in
the order of the logits, in config.json under ROLES_KEY: the agent reads config.json already, so a model
names its head where it names its shapes; a model without the key is served exactly as before. The ASR
graphs are not changed, so older agents serve the model (without roles)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any, Sequence

ROLES_KEY = "whisperops_speaker_roles"
HEAD_FILE = "role_head.safetensors"
ONNX_FILE = "onnx/role_head.onnx"
HIDDEN = 64
# the head's learning rate = HEAD_LR_SCALE × the model's (a new classifier on a pretrained encoder; with the
# model's LoRA rate alone it barely moved in a few dozen steps: held-out role accuracy 0.725 after 30)
HEAD_LR_SCALE = 10.0
NO_ROLE = -100


def encoder_valid_frames(n_samples: int, hop: int, max_frames: int) -> int:
    """Encoder output frames that hold audio for n_samples of audio: the log-mel front end gives
    n_samples // hop + 1 frames, the encoder's second convolution (stride 2) halves them, rounding up."""
    mel = n_samples // hop + 1
    return max(1, min(max_frames, (mel + 1) // 2))


def _torch_head(d_model: int, n_roles: int, hidden: int = HIDDEN):
    import torch

    class RoleHead(torch.nn.Module):
        """Masked mean pool over time, then Linear(d_model, hidden) → GELU → Linear(hidden, R)."""

        def __init__(self) -> None:
            super().__init__()
            self.fc1 = torch.nn.Linear(d_model, hidden)
            self.fc2 = torch.nn.Linear(hidden, n_roles)

        def pool(self, last_hidden_state, valid_frames):
            t = last_hidden_state.shape[1]
            mask = (torch.arange(t, device=last_hidden_state.device)[None, :] < valid_frames[:, None]).to(last_hidden_state.dtype)
            return (last_hidden_state * mask[:, :, None]).sum(1) / mask.sum(1).clamp(min=1.0)[:, None]

        def classify(self, pooled):
            return self.fc2(torch.nn.functional.gelu(self.fc1(pooled)))

        def forward(self, last_hidden_state, valid_frames):
            return self.classify(self.pool(last_hidden_state, valid_frames))

    return RoleHead()


def make_head(d_model: int, n_roles: int, hidden: int = HIDDEN, seed: int = 0):
    import torch

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return _torch_head(d_model, n_roles, hidden)


def head_params(head) -> int:
    return sum(p.numel() for p in head.parameters())


def joint_loss(asr_loss, role_logits, role_labels, weight: float):
    """(asr_loss + weight · CE(role_logits, role_labels), role CE). Samples without a role (NO_ROLE) do
    not count; a batch with none adds nothing (and a zero role CE)."""
    import torch.nn.functional as F

    mask = role_labels != NO_ROLE
    if not bool(mask.any()):
        zero = role_logits.sum() * 0.0
        return asr_loss + zero, zero
    ce = F.cross_entropy(role_logits[mask].float(), role_labels[mask])
    return asr_loss + weight * ce, ce


def roles_of(model_dir: Path | str) -> list[str] | None:
    v = json.loads((Path(model_dir) / "config.json").read_text()).get(ROLES_KEY)
    return list(v) if v else None


def load_head(model_dir: Path | str):
    """The head of a model folder (None when it has none), its shapes read from the weights."""
    from safetensors.torch import load_file

    roles = roles_of(model_dir)
    p = Path(model_dir) / HEAD_FILE
    if not roles or not p.is_file():
        return None
    sd = load_file(str(p))
    hidden, d_model = sd["fc1.weight"].shape
    if sd["fc2.weight"].shape[0] != len(roles):
        raise ValueError(f"{p}: {sd['fc2.weight'].shape[0]} outputs for {len(roles)} roles")
    head = _torch_head(int(d_model), len(roles), int(hidden))
    head.load_state_dict(sd)
    return head.eval()


def save_head(head, roles: Sequence[str], out_dir: Path | str) -> None:
    """Write role_head.safetensors and the roles into config.json (after save_pretrained)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    save_file({k: v.detach().to("cpu").float().contiguous() for k, v in head.state_dict().items()}, str(out / HEAD_FILE))
    set_roles(out, list(roles))


def set_roles(model_dir: Path, roles: list[str] | None) -> None:
    cfg_path = Path(model_dir) / "config.json"
    cfg = json.loads(cfg_path.read_text())
    if roles:
        cfg[ROLES_KEY] = roles
    else:
        cfg.pop(ROLES_KEY, None)
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def carry_head(src: Path, dst: Path) -> None:
    """Copy a head (weights + roles) from one model folder to another (WiSE-FT writes a new folder)."""
    import shutil

    roles = roles_of(src)
    if roles and (src / HEAD_FILE).is_file():
        shutil.copy2(src / HEAD_FILE, dst / HEAD_FILE)
        set_roles(dst, roles)


def export_onnx(model_dir: Path) -> Path:
    """onnx/role_head.onnx from role_head.safetensors: inputs last_hidden_state [B, T, d_model] and
    valid_frames [B] (int64), output role_logits [B, R]; batch and frames dynamic; float32 (the head is
    tiny, so the INT8 model uses the same graph on its INT8 encoder's output)."""
    import torch

    head = load_head(model_dir)
    if head is None:
        raise ValueError(f"{model_dir} has no role head")
    cfg = json.loads((model_dir / "config.json").read_text())
    t = int(cfg["max_source_positions"])
    dst = model_dir / ONNX_FILE
    dst.parent.mkdir(parents=True, exist_ok=True)
    x = torch.zeros(2, t, head.fc1.in_features)
    n = torch.tensor([t, t // 2], dtype=torch.int64)
    torch.onnx.export(head, (x, n), str(dst), input_names=["last_hidden_state", "valid_frames"],
                      output_names=["role_logits"], opset_version=17, dynamo=False,
                      dynamic_axes={"last_hidden_state": {0: "batch", 1: "frames"}, "valid_frames": {0: "batch"},
                                    "role_logits": {0: "batch"}})
    return dst


# --- data ----------------------------------------------------------------------------------------

def voice_split(spec: dict[str, Any]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(training voices per role, held-out voices per role): speakerRole.voices entries that are among
    dataset.synthesize.voices are spoken in training; the others are held out for the role accuracy."""
    sr = spec["compression"]["speakerRole"]
    syn_voices = set((spec["dataset"].get("synthesize") or {}).get("voices") or [])
    train: dict[str, list[str]] = {r: [] for r in sr["roles"]}
    held: dict[str, list[str]] = {r: [] for r in sr["roles"]}
    for v in sr.get("voices", []):
        (train if v["voice"] in syn_voices else held)[v["role"]].append(v["voice"])
    return {r: v for r, v in train.items() if v}, {r: v for r, v in held.items() if v}


def _variants(voices: Sequence[str]) -> list[str]:
    return [""] if all("+" in v for v in voices) else []


PROBE_TEXT = "the patient is resting"


def ignored_variants(voices: Sequence[str]) -> list[str]:
    """The voices whose espeak-ng variant (after the "+") changes nothing: espeak-ng silently speaks them as
    the voice without it — an unknown variant name ("en-us+Adam"; the file is "adam"), or a voice that
    ignores variants: "en-gb+f3" and "en-gb+m3" are both en-gb's one male voice, whereas "en+f3" (the same
    British English) is female. Found by speaking one sentence both ways at the same rate and pitch."""
    from . import synth

    plain: dict[str, Any] = {}
    out = []
    for v in voices:
        if "+" not in v:
            continue
        base = v.split("+", 1)[0]
        if base not in plain:
            plain[base] = synth.speak(PROBE_TEXT, synth.Voice(base, 160, 50))
        a, b = synth.speak(PROBE_TEXT, synth.Voice(v, 160, 50)), plain[base]
        if a.shape == b.shape and bool((a == b).all()):
            out.append(v)
    return out


def same_length(voices: dict[str, list[str]]) -> dict[str, list[str]]:
    """Each role's voices repeated to one length, the least common multiple of the counts: synth draws a
    sentence's voice, rate and pitch from one seeded stream, and only lists of one length consume it alike —
    so roles with 3 and 4 voices would otherwise get different rates and pitches. Every voice of a role
    stays equally likely."""
    n = math.lcm(*(len(vs) for vs in voices.values())) if voices else 0
    return {r: list(vs) * (n // len(vs)) for r, vs in voices.items()}


def synthesize_by_role(texts: Sequence[str], scenario: str, out_dir: Path, voices: dict[str, list[str]], seed: int,
                       wpm: tuple[float, float], pitch: tuple[float, float], workers: int) -> list:
    """Every text once per role, each time by one of that role's voices (drawn at random), with the
    same speaking rate and pitch for every role (one seed): the roles differ by voice only, never by
    what is said or how fast or high it is said."""
    from . import synth
    from .data import DatasetError

    bad = ignored_variants(sorted({v for vs in voices.values() for v in vs}))
    if bad:
        raise DatasetError(f"spec.compression.speakerRole.voices: espeak-ng ignores the variant of {', '.join(bad)} (it speaks "
                           "the voice without it, so the role would not be in the voice): name a variant espeak-ng has "
                           "(espeak-ng --voices=variant) on a voice that takes variants (en+f3 for British English, not en-gb+f3)")
    out = []
    for role, vs in same_length(voices).items():
        cfg = synth.SynthConfig(voices=list(vs), wpm=wpm, pitch=pitch, seed=seed)
        if _variants(vs):
            cfg.variants = [""]
        for s in synth.synthesize(list(texts), scenario, out_dir, cfg, workers=workers):
            s.role = role
            out.append(s)
    return out


def heldout_set(spec: dict[str, Any], evals: dict[str, list], work: Path, seed: int, n_max: int, workers: int) -> list:
    """Role-labelled held-out samples: the evaluation sentences (never trained on) spoken by the
    held-out voices, each once per role, and the evaluation manifests' samples that carry a role."""
    _, held = voice_split(spec)
    out = [s for ss in evals.values() for s in ss if getattr(s, "role", None)]
    if held:
        scen = spec["dataset"].get("scenario") or (spec["dataset"].get("synthesize") or {}).get("scenario")
        texts = sorted({s.text for s in evals.get(scen) or next(iter(evals.values()), [])})
        random.Random(seed + 7).shuffle(texts)
        texts = texts[: max(1, n_max // max(1, len(held)))]
        syn = spec["dataset"].get("synthesize") or {}
        wpm = (syn.get("wordsPerMinute", {}).get("min", 130), syn.get("wordsPerMinute", {}).get("max", 200))
        pitch = (syn.get("pitch", {}).get("min", 25), syn.get("pitch", {}).get("max", 75))
        out += synthesize_by_role(texts, "roles-heldout", work / "audio" / "roles-heldout", held, seed + 11, wpm, pitch,
                                  workers)
    return out


def pooled_features(model_dir: Path, samples: Sequence, batch_size: int = 16):
    """The head's input for each sample, as the head pools it: (pooled [N, d_model], valid frames [N]) from
    the model's own encoder (PyTorch, the first window of each file)."""
    import torch

    from . import audio
    from .compress import load_whisper

    model = load_whisper(model_dir).eval()
    pre = json.loads((Path(model_dir) / "preprocessor_config.json").read_text())
    hop, t = int(pre.get("hop_length", 160)), int(model.config.max_source_positions)
    n_win = int(pre.get("n_samples", 2 * t * hop))
    head = _torch_head(int(model.config.d_model), 1)
    pooled, valid_all = [], []
    for i in range(0, len(samples), batch_size):
        chunk = samples[i:i + batch_size]
        waves = [audio.read_audio(s.audio)[:n_win] for s in chunk]
        feats = torch.from_numpy(audio.log_mel(str(model_dir), waves))
        valid = torch.tensor([encoder_valid_frames(len(w), hop, t) for w in waves], dtype=torch.int64)
        with torch.no_grad():
            pooled.append(head.pool(model.model.encoder(feats).last_hidden_state, valid))
        valid_all.append(valid)
    if not pooled:
        return torch.zeros(0, int(model.config.d_model)), torch.zeros(0, dtype=torch.int64)
    return torch.cat(pooled), torch.cat(valid_all)


def accuracy(model_dir: Path, samples: Sequence, batch_size: int = 16) -> dict[str, Any]:
    """Role accuracy of the model's head (PyTorch) on role-labelled samples: {accuracy, n, perRole}."""
    import numpy as np
    import torch

    roles = roles_of(model_dir)
    head = load_head(model_dir)
    if head is None or not roles:
        raise ValueError(f"{model_dir} has no role head")
    idx = {r: i for i, r in enumerate(roles)}
    labelled = [s for s in samples if getattr(s, "role", None) in idx]
    x, _ = pooled_features(model_dir, labelled, batch_size)
    with torch.no_grad():
        preds = head.classify(x).argmax(-1).tolist() if len(labelled) else []
    gold = [idx[s.role] for s in labelled]
    ok = np.array(preds) == np.array(gold)
    per = {r: round(float(ok[np.array(gold) == i].mean()), 4) for r, i in idx.items() if (np.array(gold) == i).any()}
    return {"accuracy": round(float(ok.mean()), 4) if len(ok) else None, "n": len(labelled), "perRole": per}
