"""Models: the built-in tiny base model (``tiny``, ``corpus``, ``pretrain``, ``probe``) and loading.

Importing this package is cheap (no torch); import the submodules you need.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["TINY_BASE_DIR"]

#: The shipped tiny-base checkpoint (Hugging Face format); ``--model tiny-base`` resolves here.
TINY_BASE_DIR = Path(__file__).resolve().parent.parent / "assets" / "tiny-base"
