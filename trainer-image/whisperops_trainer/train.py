"""Fine-tuning: LoRA (peft), freeze-encoder or full; curriculum stages; bf16 on GPU, fp32 on CPU;
several GPUs through accelerate (start the `train` command under torchrun / accelerate launch)."""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import audio, log, params
from .augment import AugmentConfig, WaveAugmenter
from .features import LogMel, spec_augment
from .data import Sample

DEFAULT_LR = {"lora": 1e-3, "freezeEncoder": 1e-4, "full": 5e-5}


@dataclass
class TrainConfig:
    method: str = "lora"
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: Sequence[str] = ("q_proj", "v_proj")
    learning_rate: float | None = None
    batch_size: int = 16
    grad_accum: int = 1
    max_steps: int | None = None
    precision: str = "auto"
    seed: int = 42
    warmup_fraction: float = 0.1
    weight_decay: float = 0.0
    log_every: int = 10
    num_workers: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # distillation (spec.compression.distillation): the teacher's folder, softmax temperature, loss weights
    teacher_dir: str | None = None
    distill_temperature: float = 2.0
    distill_kl_weight: float = 0.5
    distill_ce_weight: float = 0.5
    # weight of the hidden-state term (compress.hidden_state_loss, pairs by compress.layer_pairs); 0 = logits only
    distill_hidden_weight: float = 0.0
    # quantization-aware training (spec.compression.quantizationAware): training utterances the
    # activation ranges are calibrated on before training; 0 = off (qat.py)
    qat_calibration_samples: int = 0
    # speaker-role head (spec.compression.speakerRole): role names (the logits' order) and the role CE weight
    role_names: Sequence[str] | None = None
    role_loss_weight: float = 0.3

    def lr(self) -> float:
        return self.learning_rate if self.learning_rate else DEFAULT_LR[self.method]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        d["role_names"] = list(self.role_names) if self.role_names else None
        return d

    @staticmethod
    def from_json(d: dict[str, Any]) -> "TrainConfig":
        d = dict(d)
        aug = d.pop("augment", {}) or {}
        for k in ("speed", "snr_db", "gain"):
            if k in aug:
                aug[k] = tuple(aug[k])
        return TrainConfig(augment=AugmentConfig(**aug), **d)


def prompt_ids(model_dir: str) -> list[int]:
    gen = json.loads((Path(model_dir) / "generation_config.json").read_text())
    ids = [int(gen["decoder_start_token_id"])]
    if "<|en|>" in gen.get("lang_to_id", {}):
        ids.append(int(gen["lang_to_id"]["<|en|>"]))
    if "transcribe" in gen.get("task_to_id", {}):
        ids.append(int(gen["task_to_id"]["transcribe"]))
    if gen.get("no_timestamps_token_id") is not None:
        ids.append(int(gen["no_timestamps_token_id"]))
    return ids


class SpeechDataset:
    """Samples -> (augmented waveform, decoder input ids, labels). Log-mel features and SpecAugment
    are computed per batch on the training device (features.py). The forced prompt positions are
    masked out of the loss (-100): decoding always forces them."""

    def __init__(self, samples: Sequence[Sample], model_dir: str, tokenizer, cfg: AugmentConfig | None,
                 seed: int, max_label_len: int, roles: Sequence[str] | None = None):
        self.samples = list(samples)
        self.role_ids = {r: i for i, r in enumerate(roles or [])}
        self.tok = tokenizer
        self.aug = WaveAugmenter(cfg) if cfg is not None else None
        self.seed = seed
        self.epoch = 0
        self.prompt = prompt_ids(model_dir)
        self.eos = int(tokenizer.eos_token_id)
        self.max_label_len = max_label_len
        self.n_samples = 10 * audio.SAMPLE_RATE

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        s = self.samples[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        x = audio.read_audio(s.audio)
        if self.aug is not None:
            x = self.aug(x, rng)
        x = x[: self.n_samples]
        text = " " + s.text.strip()
        ids = self.prompt + self.tok.encode(text, add_special_tokens=False)[: self.max_label_len] + [self.eos]
        dec_in = np.array(ids[:-1], dtype=np.int64)
        labels = np.array(ids[1:], dtype=np.int64)
        labels[: len(self.prompt) - 1] = -100
        return {"audio": x, "decoder_input_ids": dec_in, "labels": labels,
                "role": np.int64(self.role_ids.get(s.role, -100) if s.role else -100)}


def collate(batch: list[dict[str, np.ndarray]], pad_id: int, n_samples: int = 160000):
    import torch

    n = max(len(b["labels"]) for b in batch)
    dec = np.full((len(batch), n), pad_id, dtype=np.int64)
    lab = np.full((len(batch), n), -100, dtype=np.int64)
    wav = np.zeros((len(batch), n_samples), dtype=np.float32)
    frames = np.zeros(len(batch), dtype=np.int64)
    roles = np.array([int(b.get("role", -100)) for b in batch], dtype=np.int64)
    for i, b in enumerate(batch):
        dec[i, : len(b["decoder_input_ids"])] = b["decoder_input_ids"]
        lab[i, : len(b["labels"])] = b["labels"]
        wav[i, : len(b["audio"])] = b["audio"]
        frames[i] = len(b["audio"]) // 160 + 1
    return {
        "audio": torch.from_numpy(wav),
        "frames": torch.from_numpy(frames),
        "decoder_input_ids": torch.from_numpy(dec),
        "labels": torch.from_numpy(lab),
        "role": torch.from_numpy(roles),
    }


def apply_method(model, cfg: TrainConfig):
    """Set what is trained; returns the (possibly peft-wrapped) model."""
    if cfg.method == "lora":
        from peft import LoraConfig, get_peft_model

        lc = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                        target_modules=list(cfg.target_modules), bias="none")
        return get_peft_model(model, lc)
    if cfg.method == "freezeEncoder":
        model.model.encoder.requires_grad_(False)
        return model
    if cfg.method == "full":
        return model
    raise ValueError(f"unknown method {cfg.method}")


def resolve_precision(precision: str) -> str:
    """accelerate mixed_precision: bf16 on a GPU that has it ('auto'), fp32 ('no') on CPU."""
    import torch

    if not torch.cuda.is_available():
        return "no"
    if precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}[precision]


@dataclass
class TrainResult:
    steps: int
    samples_seen: int
    seconds: float
    utt_per_sec: float
    final_loss: float
    trainable: int
    total: int
    precision: str
    world_size: int
    losses: list[float]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["losses"] = [round(x, 4) for x in self.losses[-50:]]
        return d


def train(model_dir: str, stages: Sequence[tuple[str, Sequence[Sample]]], cfg: TrainConfig, out_dir: str) -> TrainResult:
    """Train over the curriculum stages in order and save the (LoRA-merged) model to out_dir."""
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers import AutoTokenizer, get_linear_schedule_with_warmup

    from .compress import load_whisper

    mp = resolve_precision(cfg.precision)
    acc = Accelerator(mixed_precision=mp, gradient_accumulation_steps=cfg.grad_accum)
    set_seed(cfg.seed)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = load_whisper(model_dir, dtype=torch.float32)
    saved_spec_aug = model.config.apply_spec_augment
    model.config.apply_spec_augment = False  # SpecAugment is ours (features.spec_augment), per spec
    model.config.use_cache = False
    model = apply_method(model, cfg)
    if cfg.qat_calibration_samples:
        if cfg.method == "lora":
            raise ValueError("quantization-aware training needs method full or freezeEncoder, not lora")
        from . import qat

        n_q = qat.prepare(model)
        log.info("Quantization-aware training", linears=n_q, fake_quant_modules=len(qat.fake_quants(model)))
    trainable, total = params.count(model)
    log.info("Model ready", method=cfg.method, trainable=trainable, total=total,
             ratio=trainable / total, precision=mp, processes=acc.num_processes)

    max_label = int(model.config.max_target_positions) - len(prompt_ids(model_dir)) - 1
    per_step = cfg.batch_size * cfg.grad_accum * acc.num_processes
    planned = sum(math.ceil(len(s) / per_step) for _, s in stages)
    total_steps = min(planned, cfg.max_steps) if cfg.max_steps else planned
    role_head = None
    if cfg.role_names:
        from . import roles as roles_mod

        role_head = roles_mod.load_head(model_dir) if roles_mod.roles_of(model_dir) == list(cfg.role_names) else None
        started = "the base model's head" if role_head is not None else "new"
        if role_head is None:
            role_head = roles_mod.make_head(int(model.config.d_model), len(cfg.role_names), seed=cfg.seed)
        role_head.train()
        log.info("Speaker-role head", roles=list(cfg.role_names), params=roles_mod.head_params(role_head),
                 loss_weight=cfg.role_loss_weight, start=started)
    groups: list[dict[str, Any]] = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    if role_head is not None:  # a new head starts from nothing: it learns at HEAD_LR_SCALE × the model's rate
        from .roles import HEAD_LR_SCALE

        groups.append({"params": list(role_head.parameters()), "lr": cfg.lr() * HEAD_LR_SCALE})
    opt = torch.optim.AdamW(groups, lr=cfg.lr(), weight_decay=cfg.weight_decay)
    sched = get_linear_schedule_with_warmup(opt, int(cfg.warmup_fraction * total_steps), max(1, total_steps))
    model, opt, sched = acc.prepare(model, opt, sched)
    if role_head is not None:
        role_head = acc.prepare(role_head)
    model.train()
    teacher = None
    if cfg.teacher_dir:
        teacher = load_whisper(cfg.teacher_dir, dtype=torch.float32).to(acc.device)
        teacher.config.use_cache = False
        teacher.eval().requires_grad_(False)
        if teacher.config.vocab_size != acc.unwrap_model(model).config.vocab_size:
            raise ValueError("the teacher's vocabulary differs from the student's")
        log.info("Distilling", teacher=cfg.teacher_dir, teacher_params=params.count(teacher)[1],
                 temperature=cfg.distill_temperature, kl_weight=cfg.distill_kl_weight, ce_weight=cfg.distill_ce_weight,
                 hidden_weight=cfg.distill_hidden_weight)

    logmel = LogMel(model_dir, acc.device)
    mask_gen = torch.Generator()
    mask_gen.manual_seed(cfg.seed + 17 * acc.process_index)
    a = cfg.augment
    if cfg.qat_calibration_samples:
        _qat_calibrate(acc.unwrap_model(model), stages, model_dir, tok, cfg, logmel, max_label, acc.device)
    step = 0
    seen = 0
    losses: list[float] = []
    role_losses: list[float] = []
    hidden_losses: list[float] = []
    hidden = teacher is not None and cfg.distill_hidden_weight > 0  # forward passes return hidden states
    t0 = time.time()
    pad = int(tok.eos_token_id)
    for si, (name, samples) in enumerate(stages):
        if step >= total_steps:
            break
        log.set_stage("train")
        log.info("Curriculum stage", stage_name=name, index=si, samples=len(samples),
                 domain=sum(1 for s in samples if s.scenario != "general"))
        ds = SpeechDataset(samples, model_dir, tok, cfg.augment, cfg.seed + 1000 * si, max_label, cfg.role_names)
        g = torch.Generator()
        g.manual_seed(cfg.seed + si)
        dl = torch.utils.data.DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, generator=g,
                                         collate_fn=lambda b: collate(b, pad), num_workers=cfg.num_workers,
                                         persistent_workers=False, drop_last=False)
        dl = acc.prepare(dl)
        for batch in dl:
            with torch.no_grad():
                feats = logmel(batch["audio"])
                feats = spec_augment(feats, batch["frames"].tolist(), mask_gen, a.mask_time_prob, a.mask_time_length,
                                     a.mask_feature_prob, a.mask_feature_length)
            with acc.accumulate(model):
                out = model(input_features=feats, decoder_input_ids=batch["decoder_input_ids"], labels=batch["labels"],
                            output_hidden_states=hidden)
                loss = out.loss
                if teacher is not None:
                    from .compress import distillation_loss, hidden_state_loss

                    with torch.no_grad(), acc.autocast():
                        t_out = teacher(input_features=feats, decoder_input_ids=batch["decoder_input_ids"],
                                        output_hidden_states=hidden)
                    loss, _ = distillation_loss(out.logits, t_out.logits, batch["labels"], out.loss, cfg.distill_temperature,
                                                cfg.distill_kl_weight, cfg.distill_ce_weight)
                    if hidden:
                        h_loss = hidden_state_loss(out, t_out, batch["labels"])
                        loss = loss + cfg.distill_hidden_weight * h_loss
                        hidden_losses.append(float(h_loss.detach().float().item()))
                if role_head is not None:
                    from .roles import encoder_valid_frames, joint_loss

                    h = out.encoder_last_hidden_state
                    valid = torch.tensor([encoder_valid_frames(int(f) * 160 - 160, 160, h.shape[1]) for f in batch["frames"].tolist()],
                                         dtype=torch.int64, device=h.device)
                    loss, role_ce = joint_loss(loss, role_head(h, valid), batch["role"], cfg.role_loss_weight)
                    role_losses.append(float(role_ce.detach().float().item()))
                acc.backward(loss)
                if acc.sync_gradients:
                    acc.clip_grad_norm_(model.parameters(), 1.0)
                    if role_head is not None:
                        acc.clip_grad_norm_(role_head.parameters(), 1.0)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
            seen += batch["labels"].shape[0] * acc.num_processes
            if acc.sync_gradients:
                step += 1
                losses.append(float(loss.detach().float().item()))
                if step % cfg.log_every == 0 or step == total_steps:
                    el = time.time() - t0
                    log.info("Training", step=step, steps=total_steps, loss=float(np.mean(losses[-cfg.log_every:])),
                             lr=float(sched.get_last_lr()[0]), utt_per_sec=seen / el if el else 0.0,
                             **({"role_loss": float(np.mean(role_losses[-cfg.log_every * cfg.grad_accum:]))} if role_losses else {}),
                             **({"hidden_loss": float(np.mean(hidden_losses[-cfg.log_every * cfg.grad_accum:]))} if hidden_losses else {}))
                if step >= total_steps:
                    break
    acc.wait_for_everyone()
    secs = time.time() - t0
    res = TrainResult(steps=step, samples_seen=seen, seconds=secs, utt_per_sec=seen / secs if secs else 0.0,
                      final_loss=float(np.mean(losses[-10:])) if losses else float("nan"),
                      trainable=trainable, total=total, precision=mp, world_size=acc.num_processes, losses=losses)
    if acc.is_main_process:
        m = acc.unwrap_model(model)
        if cfg.method == "lora":
            m = m.merge_and_unload()
        qat_params = None
        if cfg.qat_calibration_samples:
            from . import qat

            qat_params = qat.finish(m)  # the fake-quant modules go, the fp32 weights stay
        m.config.apply_spec_augment = saved_spec_aug
        m.config.use_cache = True
        m = m.to(torch.float32)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        m.save_pretrained(out_dir, safe_serialization=True)
        from .export import copy_hf_side_files

        copy_hf_side_files(Path(model_dir), Path(out_dir))
        from . import roles as roles_mod

        if role_head is not None:
            roles_mod.save_head(acc.unwrap_model(role_head), list(cfg.role_names or []), Path(out_dir))
        elif roles_mod.roles_of(out_dir):
            roles_mod.set_roles(Path(out_dir), None)  # a base model's head is not carried into a model trained without one
        if qat_params is not None:
            from . import qat

            qat.save_params(Path(out_dir), qat_params)  # the static INT8 export's activation scales
        (Path(out_dir) / "training_report.json").write_text(json.dumps(res.to_json(), indent=2))
    log.info("Trained", steps=step, seconds=secs, utt_per_sec=res.utt_per_sec, final_loss=res.final_loss)
    acc.wait_for_everyone()
    return res


def _qat_calibrate(model, stages, model_dir: str, tok, cfg: TrainConfig, logmel, max_label: int, device) -> None:
    """Activation ranges of the QAT fake-quant modules from the first qat_calibration_samples training
    utterances (a fixed random pick over all stages, no augmentation), before the first step."""
    import torch

    from . import qat

    pool = [s for _, ss in stages for s in ss]
    picked = random.Random(cfg.seed + 11).sample(pool, min(cfg.qat_calibration_samples, len(pool)))
    ds = SpeechDataset(picked, model_dir, tok, None, cfg.seed, max_label)
    dl = torch.utils.data.DataLoader(ds, batch_size=min(cfg.batch_size, 16), shuffle=False,
                                     collate_fn=lambda b: collate(b, int(tok.eos_token_id)))

    def batches():
        for b in dl:
            with torch.no_grad():
                feats = logmel(b["audio"].to(device))
            yield {"input_features": feats, "decoder_input_ids": b["decoder_input_ids"].to(device)}

    t0 = time.time()
    n = qat.calibrate(model, batches())
    log.info("Calibrated activation ranges", utterances=len(picked), batches=n, seconds=round(time.time() - t0, 2))


def shuffle_copy(xs: Sequence[Sample], seed: int) -> list[Sample]:
    out = list(xs)
    random.Random(seed).shuffle(out)
    return out


def interpolate(base_dir: str, tuned_dir: str, alpha: float, out_dir: str) -> None:
    """Weight-space ensembling (WiSE-FT, Wortsman et al. 2022): theta = theta_base + alpha *
    (theta_tuned - theta_base). alpha=1 is the fine-tuned model, 0 the base; values in between keep
    most of the in-domain gain and give back general accuracy lost to forgetting."""
    import torch

    from .compress import load_whisper
    from .export import copy_hf_side_files

    base = load_whisper(base_dir, dtype=torch.float32)
    tuned = load_whisper(tuned_dir, dtype=torch.float32)
    sd_t = tuned.state_dict()
    with torch.no_grad():
        for name, p in base.state_dict().items():
            if p.is_floating_point():
                p.add_(alpha * (sd_t[name] - p))
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    base.save_pretrained(out_dir, safe_serialization=True)
    copy_hf_side_files(Path(tuned_dir), Path(out_dir))
