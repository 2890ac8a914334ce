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

        def forward(self, last_hidden_state, valid_frames):
            t = last_hidden_state.shape[1]
            mask = (torch.arange(t, device=last_hidden_state.device)[None, :] < valid_frames[:, None]).to(last_hidden_state.dtype)
            pooled = (last_hidden_state * mask[:, :, None]).sum(1) / mask.sum(1).clamp(min=1.0)[:, None]
            return self.fc2(torch.nn.functional.gelu(self.fc1(pooled)))

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


def synthesize_by_role(texts: Sequence[str], scenario: str, out_dir: Path, voices: dict[str, list[str]], seed: int,
                       wpm: tuple[float, float], pitch: tuple[float, float], workers: int) -> list:
    """Every text once per role, each time by one of that role's voices (drawn at random), with the
    same speaking rate and pitch for every role (one seed): the roles differ by voice only, never by
    what is said or how fast or high it is said."""
    from . import synth

    out = []
    for role, vs in voices.items():
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


def accuracy(model_dir: Path, samples: Sequence, batch_size: int = 16) -> dict[str, Any]:
    """Role accuracy of the model's head (PyTorch) on role-labelled samples: {accuracy, n, perRole}."""
    import numpy as np
    import torch

    from . import audio
    from .compress import load_whisper

    roles = roles_of(model_dir)
    head = load_head(model_dir)
    if head is None or not roles:
        raise ValueError(f"{model_dir} has no role head")
    model = load_whisper(model_dir).eval()
    pre = json.loads((model_dir / "preprocessor_config.json").read_text())
    hop, t = int(pre.get("hop_length", 160)), int(model.config.max_source_positions)
    n_win = int(pre.get("n_samples", 2 * t * hop))
    idx = {r: i for i, r in enumerate(roles)}
    labelled = [s for s in samples if getattr(s, "role", None) in idx]
    preds: list[int] = []
    for i in range(0, len(labelled), batch_size):
        chunk = labelled[i:i + batch_size]
        waves = [audio.read_audio(s.audio)[:n_win] for s in chunk]
        feats = torch.from_numpy(audio.log_mel(str(model_dir), waves))
        valid = torch.tensor([encoder_valid_frames(len(w), hop, t) for w in waves], dtype=torch.int64)
        with torch.no_grad():
            h = model.model.encoder(feats).last_hidden_state
            preds += head(h, valid).argmax(-1).tolist()
    gold = [idx[s.role] for s in labelled]
    ok = np.array(preds) == np.array(gold)
    per = {r: round(float(ok[np.array(gold) == i].mean()), 4) for r, i in idx.items() if (np.array(gold) == i).any()}
    return {"accuracy": round(float(ok.mean()), 4) if len(ok) else None, "n": len(labelled), "perRole": per}
