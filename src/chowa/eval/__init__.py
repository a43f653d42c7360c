"""Evaluation: the JGLUE harness of the model cards (`jglue/`) over a small model contract (`models.py`), held-out
answer accuracy (`heldout.py`) and side-by-side model comparison (`compare.py`).

Run as:
    chowa eval jglue --model out/sft --data-dir ~/data/jglue --suite weblab
"""
