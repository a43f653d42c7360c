"""The JGLUE 4/6/8-task harness of the rinna and weblab model cards, reproduced offline on user-supplied files.

Run as:
    chowa eval jglue --model out/sft --data-dir ~/data/jglue --suite weblab
"""

from chowa.eval.jglue.runner import results_markdown, run_jglue, write_prompts

__all__ = ["results_markdown", "run_jglue", "write_prompts"]
