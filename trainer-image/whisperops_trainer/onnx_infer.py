"""Greedy transcription with the exported ONNX graphs (encoder + merged decoder), the way
transformers.js and the edge agent run them: first step without cache (use_cache_branch=false,
empty past tensors), then one token per step with the decoder's past and the first step's
cross-attention keys/values (the cached branch returns empty encoder presents)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np


class OnnxWhisper:
    def __init__(self, model_dir: str | Path, suffix: str = "", threads: int = 0):
        import onnxruntime as ort

        d = Path(model_dir)
        so = ort.SessionOptions()
        if threads:
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.encoder = ort.InferenceSession(str(d / "onnx" / f"encoder_model{suffix}.onnx"), so,
                                            providers=["CPUExecutionProvider"])
        self.decoder = ort.InferenceSession(str(d / "onnx" / f"decoder_model_merged{suffix}.onnx"), so,
                                            providers=["CPUExecutionProvider"])
        cfg = json.loads((d / "config.json").read_text())
        gen = json.loads((d / "generation_config.json").read_text())
        self.n_layers = int(cfg["decoder_layers"])
        self.n_heads = int(cfg["decoder_attention_heads"])
        self.head_dim = int(cfg["d_model"]) // self.n_heads
        self.eos = int(gen.get("eos_token_id", cfg.get("eos_token_id", 0)))
        self.max_length = int(gen.get("max_length", cfg.get("max_target_positions", 448)))
        self.begin_suppress = list(gen.get("begin_suppress_tokens") or [])
        self.suppress = list(gen.get("suppress_tokens") or [])
        lang = gen.get("lang_to_id", {}).get("<|en|>")
        task = gen.get("task_to_id", {}).get("transcribe")
        prompt = [int(gen["decoder_start_token_id"])]
        if lang is not None:
            prompt.append(int(lang))
        if task is not None:
            prompt.append(int(task))
        if gen.get("no_timestamps_token_id") is not None and not gen.get("return_timestamps"):
            prompt.append(int(gen["no_timestamps_token_id"]))
        self.prompt = prompt
        # heads of each past input from the graph (a head-pruned model has its own per layer and kind);
        # a symbolic head dimension falls back to config.json's uniform decoder_attention_heads
        self.pkv_heads = {i.name: (i.shape[1] if isinstance(i.shape[1], int) else self.n_heads)
                          for i in self.decoder.get_inputs() if i.name.startswith("past_key_values.")}
        self.pkv_names = list(self.pkv_heads)

    def generate(self, features: np.ndarray) -> list[list[int]]:
        """Token ids generated after the prompt (without EOS), one list per batch row."""
        b = features.shape[0]
        enc = self.encoder.run(None, {"input_features": features.astype(np.float32)})[0]
        ids = np.tile(np.array(self.prompt, dtype=np.int64), (b, 1))
        feeds = {"input_ids": ids, "encoder_hidden_states": enc, "use_cache_branch": np.array([False])}
        for n, h in self.pkv_heads.items():
            feeds[n] = np.zeros((b, h, 0, self.head_dim), dtype=np.float32)
        out_names = [o.name for o in self.decoder.get_outputs()]
        done = np.zeros(b, dtype=bool)
        tokens: list[list[int]] = [[] for _ in range(b)]
        enc_kv: dict[str, np.ndarray] = {}
        step = 0
        while len(self.prompt) + step < self.max_length:
            outs = dict(zip(out_names, self.decoder.run(None, feeds)))
            logits = outs["logits"][:, -1, :].copy()
            if self.suppress:
                logits[:, self.suppress] = -np.inf
            if step == 0 and self.begin_suppress:
                logits[:, self.begin_suppress] = -np.inf
            nxt = logits.argmax(axis=-1)
            nxt[done] = self.eos
            for i in range(b):
                if not done[i]:
                    if nxt[i] == self.eos:
                        done[i] = True
                    else:
                        tokens[i].append(int(nxt[i]))
            if done.all():
                break
            if step == 0:
                enc_kv = {n.replace("present.", "past_key_values."): v for n, v in outs.items()
                          if n.startswith("present.") and ".encoder." in n}
            feeds = {"input_ids": nxt[:, None].astype(np.int64), "encoder_hidden_states": enc,
                     "use_cache_branch": np.array([True])}
            for n, v in outs.items():
                if n.startswith("present.") and ".decoder." in n:
                    feeds[n.replace("present.", "past_key_values.")] = v
            feeds.update(enc_kv)
            step += 1
        return tokens


def transcribe(model_dir: str | Path, features: np.ndarray, tokenizer, suffix: str = "", batch_size: int = 16,
               threads: int = 0, session: OnnxWhisper | None = None) -> list[str]:
    m = session or OnnxWhisper(model_dir, suffix, threads)
    out: list[str] = []
    for i in range(0, len(features), batch_size):
        toks = m.generate(features[i:i + batch_size])
        out.extend(tokenizer.batch_decode(toks, skip_special_tokens=True))
    return out


def texts_equal(a: Sequence[str], b: Sequence[str]) -> list[int]:
    """Indices where two transcript lists differ (after strip)."""
    return [i for i, (x, y) in enumerate(zip(a, b)) if x.strip() != y.strip()]
