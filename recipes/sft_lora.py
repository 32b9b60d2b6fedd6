#!/usr/bin/env python
"""Fine-tune a causal language model on a CAReDiO export: TRL's SFTTrainer with a LoRA adapter.

The exact commands, from a finished run to an adapter:

    pip install 'caredio[finetune]'          # trl and peft (torch comes with them)
    caredio select runs/<run_id> --budget 200
    caredio export runs/<run_id> --format trl --selected --out ft/
    python ft/sft_lora.py --data ft/train.jsonl --model Qwen/Qwen2.5-0.5B-Instruct --out ft/adapter

``train.jsonl`` is TRL's conversational prompt-completion format, one sample per line:
``{"prompt": [{"role": "user", ...}], "completion": [{"role": "assistant", ...}]}`` (a system
message, when the run had one, opens the prompt). SFTTrainer reads it as it is, applies the
model's chat template and computes the loss on the completion only.

Real fine-tuning needs a GPU and a real base model (a few hundred samples, 3 epochs, LoRA rank
16: minutes on one GPU). On a CPU this script runs, but only ``--smoke-test`` is sensible:
it swaps the base model for a tiny randomly initialized Llama and a tokenizer trained on the
data itself, both built in code (no download), and trains two steps — the project's test
suite runs it that way so that this recipe cannot rot. A smoke-test adapter is worthless.

Then measure before and after with the same questions:

    caredio eval BLEND/*_data.json --against runs/<run_id> --base-url URL --model BASE --out evals/base
    caredio eval BLEND/*_data.json --against runs/<run_id> --base-url URL --model TUNED --out evals/tuned
    caredio compare evals/base evals/tuned
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

CHAT_TEMPLATE = (  # ChatML, for the smoke test's home-made tokenizer only
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, type=Path, help="train.jsonl from `caredio export --format trl`")
    parser.add_argument("--model", help="Base model: a Hugging Face id or a local folder")
    parser.add_argument("--out", required=True, type=Path, help="Where the LoRA adapter goes")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--max-steps", type=int, default=-1, help="Stop after N optimizer steps (-1: epochs)")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--grad-accum", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=1024)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--lora-alpha", type=int, default=32)
    parser.add_argument("--lora-dropout", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke-test", action="store_true",
                        help="Tiny random model and tokenizer built in code; CPU; proves the plumbing only")
    args = parser.parse_args(argv)
    if not args.smoke_test and not args.model:
        parser.error("--model is required (or --smoke-test)")
    return args


def read_data(path: Path) -> list[dict[str, Any]]:
    """The export's lines, checked: a wrong file fails here with its line number, not deep in TRL."""
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            if not isinstance(row.get("prompt"), list) or not isinstance(row.get("completion"), list):
                sys.exit(f"{path}:{number}: expected 'prompt' and 'completion' message lists "
                         "(make the file with `caredio export --format trl`)")
            rows.append({"prompt": row["prompt"], "completion": row["completion"]})
    if not rows:
        sys.exit(f"{path}: no samples")
    return rows


def tiny_model_and_tokenizer(rows: list[dict[str, Any]], seed: int) -> tuple[Any, Any]:
    """A 2-layer Llama with random weights and a BPE tokenizer trained on ``rows``: no download."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|pad|>", "<|im_start|>", "<|im_end|>", "<|unk|>"]
    texts = [m["content"] for row in rows for m in row["prompt"] + row["completion"]]
    raw = Tokenizer(models.BPE(unk_token="<|unk|>"))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.train_from_iterator([*texts, "user assistant system"],
                            trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    from tokenizers import decoders

    raw.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<|pad|>", eos_token="<|im_end|>",
                                        bos_token="<|im_start|>", unk_token="<|unk|>")
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=2048, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.bos_token_id)
    return LlamaForCausalLM(config), tokenizer


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    rows = read_data(args.data)
    if args.smoke_test:
        model, tokenizer = tiny_model_and_tokenizer(rows, args.seed)
        target_modules: Any = ["q_proj", "k_proj", "v_proj", "o_proj"]
        model_name = "tiny random Llama (smoke test)"
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(args.model)
        tokenizer = AutoTokenizer.from_pretrained(args.model)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        target_modules = "all-linear"
        model_name = args.model
    gpu = torch.cuda.is_available()
    config = SFTConfig(
        output_dir=str(args.out),
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        learning_rate=args.lr,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum,
        max_length=args.max_length,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        seed=args.seed,
        use_cpu=not gpu,
        bf16=gpu and torch.cuda.is_bf16_supported(),
    )
    lora = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                      target_modules=target_modules, task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer, peft_config=lora)
    result = trainer.train()
    trainer.save_model(str(args.out))
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    summary = {"model": model_name, "data": str(args.data), "samples": len(rows),
               "steps": trainer.state.global_step, "losses": losses,
               "train_loss": result.training_loss, "smoke_test": args.smoke_test,
               "lora": {"r": args.lora_r, "alpha": args.lora_alpha, "target_modules": target_modules}}
    (args.out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: summary[k] for k in ("model", "samples", "steps", "train_loss")}))
    return 0 if math.isfinite(result.training_loss) else 1


if __name__ == "__main__":
    sys.exit(main())
