import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PKG_ROOT = HERE.parent
REPO = PKG_ROOT.parent
sys.path.insert(0, str(PKG_ROOT))
MODEL_DIR = REPO / "models" / "tiny-whisper-synth"

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def model_dir() -> Path:
    return MODEL_DIR


@pytest.fixture(scope="session")
def shared_data() -> Path:
    from whisperops_trainer import suites

    return suites.shared_data()


@pytest.fixture(scope="session")
def finance_eval():
    """16 held-out finance sentences spoken by espeak-ng (cached under $WHISPEROPS_CACHE/audio)."""
    from whisperops_trainer import suites

    return suites.eval_set("finance", 16)


@pytest.fixture(scope="session")
def tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))
