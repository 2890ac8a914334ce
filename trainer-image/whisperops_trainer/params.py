"""Parameter counting, and LoRA sizes of whisper-large-v2 computed on the meta device (no weights)."""

from __future__ import annotations

from typing import Sequence


def count(model) -> tuple[int, int]:
    """(trainable, total) parameters; shared (tied) tensors are counted once."""
    seen: set[int] = set()
    trainable = total = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return trainable, total


def whisper_large_v2_config():
    """openai/whisper-large-v2's published config.json, written out by hand (no hub download)."""
    from transformers import WhisperConfig

    return WhisperConfig(
        vocab_size=51865, num_mel_bins=80, d_model=1280,
        encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120,
        decoder_layers=32, decoder_attention_heads=20, decoder_ffn_dim=5120,
        max_source_positions=1500, max_target_positions=448,
        activation_function="gelu", scale_embedding=False, tie_word_embeddings=True,
        decoder_start_token_id=50258, pad_token_id=50257, bos_token_id=50257, eos_token_id=50257,
        use_cache=True,
    )


def lora_on_meta(config, rank: int = 16, alpha: int = 32, target_modules: Sequence[str] = ("q_proj", "v_proj")) -> dict:
    """Build the model on the meta device, wrap it with peft LoRA, count parameters."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import WhisperForConditionalGeneration

    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    base_trainable, base_total = count(model)
    peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=alpha, target_modules=list(target_modules),
                                                  lora_dropout=0.0, bias="none"))
    trainable, total = count(peft_model)
    n_modules = sum(1 for n, _ in peft_model.named_modules() if n.endswith("lora_A"))
    return {"rank": rank, "targetModules": list(target_modules), "adaptedModules": n_modules,
            "trainable": trainable, "total": total, "baseTotal": base_total,
            "trainableRatio": trainable / total}
