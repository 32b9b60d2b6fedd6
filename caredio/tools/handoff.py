"""``caredio export --format trl``: the hand-off to fine-tuning, in TRL's own terms.

The folder it writes is everything a user feeds to TRL's ``SFTTrainer`` with a LoRA adapter:

* ``train.jsonl`` — conversational prompt-completion lines (``{"prompt": [messages],
  "completion": [messages]}``), which SFTTrainer reads unchanged and trains on the completion
  only;
* ``sft_lora.py`` — the recipe (``recipes/sft_lora.py`` of the repository, shipped in the
  package), with the exact commands in its docstring;
* ``README.md`` — what is in the folder, where it came from, and the commands.

The folder is built under a temporary name and renamed into place, so a failure leaves nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from caredio.errors import UserInputError
from caredio.rundir.files import atomic_folder
from caredio.rundir.formats import DatasetLine
from caredio.rundir.reader import RunData

RECIPE = "sft_lora.py"
MARKER = "train.jsonl"


def trl_row(line: Mapping[str, Any]) -> dict[str, Any]:
    """A dataset line as prompt (system and user turns) and completion (the last assistant turn)."""
    messages = [{"role": m["role"], "content": m["content"]} for m in line["messages"]]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return {"prompt": messages[:last], "completion": messages[last:last + 1]}


def recipe_text() -> str:
    return resources.files("caredio.recipes").joinpath(RECIPE).read_text(encoding="utf-8")


def readme(run: RunData, count: int, selected: bool) -> str:
    source = "selected.jsonl" if selected else "dataset.jsonl"
    return f"""# CAReDiO export for TRL: run `{run.run_id}`

{count} samples from `{source}` of run `{run.run_id}` (model `{run.run.get('model', '?')}`), as TRL's
conversational prompt-completion format: `train.jsonl`, one `{{"prompt": [...], "completion": [...]}}`
per line. SFTTrainer applies the base model's chat template and trains on the completion only.

```bash
pip install 'caredio[finetune]'      # trl and peft
python sft_lora.py --data train.jsonl --model Qwen/Qwen2.5-0.5B-Instruct --out adapter
```

Real fine-tuning needs a GPU and a capable base model. `python sft_lora.py --data train.jsonl
--out smoke --smoke-test --max-steps 2` runs on a CPU with a tiny random model built in code: it
proves the plumbing, not the data. Measure the adapter before and after with `caredio eval
--against RUN_DIR` and `caredio compare`. Keep the licenses of the knowledge the data was grounded
in (see the `hf` export's dataset card).
"""


def write_trl(run: RunData, lines: list[DatasetLine], target: Path, selected: bool) -> None:
    if target.exists() and not (target / MARKER).exists():
        raise UserInputError(f"--out: {target} exists and is not a trl export; refusing to replace it")
    rows = [trl_row(line) for line in lines]
    with atomic_folder(target) as tmp:
        (tmp / MARKER).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                  encoding="utf-8")
        (tmp / RECIPE).write_text(recipe_text(), encoding="utf-8")
        (tmp / "README.md").write_text(readme(run, len(rows), selected), encoding="utf-8")
