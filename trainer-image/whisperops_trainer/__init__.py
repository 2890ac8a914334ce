"""whisperops trainer: fine-tune, evaluate, export and quantize Whisper-family models."""

__version__ = "0.1.0"
