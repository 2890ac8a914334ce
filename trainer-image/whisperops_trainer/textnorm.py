"""Text normalisation for WER/CER, shared by the trainer and (by documentation) the edge agent.

The rule (documented in trainer-image/README.md, "WER"):
  1. Unicode NFKC, lower-case; curly apostrophes become "'".
  2. Every character that is not a-z, 0-9 or an apostrophe becomes a space.
  3. Apostrophes that do not sit between two letters are dropped ("'tis" -> "tis").
  4. Runs of white space collapse to one space; leading/trailing space is removed.
No number normalisation and no spelling standardisation: our synthetic transcripts are already
lower-case words and apostrophes, so this equals Whisper's basic normaliser on them.
"""

from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[^a-z0-9']+")
_LONE_APOS = re.compile(r"(?<![a-z])'|'(?![a-z])")
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    t = unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'").replace("\u2018", "'")
    t = _NON_WORD.sub(" ", t)
    t = _LONE_APOS.sub("", t)
    return _SPACES.sub(" ", t).strip()
