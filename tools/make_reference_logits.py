#!/usr/bin/env python3
"""Golden outputs of SmolLM2-135M-Instruct from Hugging Face transformers (the independent reference).

transformers dequantizes the GGUF file to float32 with its own loader and runs its own Llama code.
Writes tests/fixtures/smollm2_reference.json:
  greedy: 5 prompts (token ids from HF's tokenizer) and their 32-token greedy continuations
  text:   token ids of tests/fixtures/english_text.txt in windows, and HF's top-1 next token at every
          position plus the margin between its top two logits (to tell near-ties from real errors)
Usage: python tools/make_reference_logits.py MODEL.gguf   (CPU is enough: ~2 minutes)
"""
import json
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPTS = [
    "The capital of France is",
    "To craft iron tools in Minecraft, you first need to",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Once upon a time, in a small village by the sea,",
    "The three primary colors are",
]
WINDOW = 512
GREEDY_TOKENS = 32


def main():
    gguf_path = sys.argv[1]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    model_dir, gguf_name = os.path.split(os.path.abspath(gguf_path))
    tokenizer = AutoTokenizer.from_pretrained(model_dir, gguf_file=gguf_name)
    model = AutoModelForCausalLM.from_pretrained(model_dir, gguf_file=gguf_name, torch_dtype=torch.float32)
    model.eval()

    greedy = []
    with torch.no_grad():
        for prompt in PROMPTS:
            ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            # Plain argmax steps, end-of-text tokens included (generate() would stop or suppress them).
            sequence = list(ids)
            for _ in range(GREEDY_TOKENS):
                logits = model(torch.tensor([sequence])).logits[0, -1]
                sequence.append(int(torch.argmax(logits)))
            greedy.append({"prompt": prompt, "prompt_ids": ids, "continuation_ids": sequence[len(ids):]})

    text = open(os.path.join(root, "tests/fixtures/english_text.txt"), encoding="utf-8").read()
    all_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    windows = []
    with torch.no_grad():
        for begin in range(0, len(all_ids) - 1, WINDOW):
            ids = all_ids[begin:begin + WINDOW]
            if len(ids) < 2:
                break
            logits = model(torch.tensor([ids])).logits[0].float()
            top2 = torch.topk(logits, 2, dim=-1)
            windows.append({
                "ids": ids,
                "top1": top2.indices[:, 0].tolist(),
                "margin": [round(float(m), 4) for m in (top2.values[:, 0] - top2.values[:, 1])],
            })

    out = {
        "model": gguf_name,
        "reference": f"transformers {__import__('transformers').__version__}, torch {torch.__version__}, float32, CPU",
        "greedy": greedy,
        "text_windows": windows,
    }
    path = os.path.join(root, "tests/fixtures/smollm2_reference.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print(f"wrote {path}: {len(greedy)} prompts, {sum(len(w['ids']) for w in windows)} positions")


if __name__ == "__main__":
    main()
