"""The JGLUE 4/6/8-task harness of the rinna and weblab model cards, reproduced offline on user-supplied files:
task data (`data`), prompts (`prompts`, `tasks`), metrics (`metrics`) and the runner (`runner.run_jglue`).

Run as:
    chowa eval jglue --model out/sft --data-dir ~/data/jglue --suite weblab
"""
