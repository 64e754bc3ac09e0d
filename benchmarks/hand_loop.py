"""The reference a `distill fit` is measured against: the bert_l3 recipe's maths written as a plain PyTorch loop,
with nothing but transformers and torch (no Lightning, no datasets, no distill).

Same student (the teacher's layers 0, 2, 4; or every other layer of any teacher), same loss (0.5 cross-entropy
+ 0.5 KL at temperature 2, times T²), AdamW at 5e-5 with 0.01 weight decay off biases and LayerNorms, 6% linear
warm-up then linear decay, batches of 32 grouped by length in pools of 50 batches, max_length 66, and as many
dev evaluations as the recipe (every quarter epoch). Prints one JSON line.

    python benchmarks/hand_loop.py --teacher T --data SST2_FOLDER [--epochs 2] [--steps N] [--precision bf16]
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import time

started = time.perf_counter()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_scheduler  # noqa: E402


def read(path: str) -> tuple[list[str], list[int]]:
    lines = open(path, encoding="utf-8").read().splitlines()[1:]
    rows = [line.split("\t") for line in lines if line]
    return [r[0] for r in rows], [int(r[1]) for r in rows]


def batches(lengths: list[int], size: int, pool: int, generator: random.Random) -> list[list[int]]:
    """Shuffled rows, sorted by length within pools of `pool` batches, then the batches shuffled."""
    order = list(range(len(lengths)))
    generator.shuffle(order)
    found = []
    for start in range(0, len(order), size * pool):
        chunk = sorted(order[start : start + size * pool], key=lambda i: lengths[i])
        found += [chunk[i : i + size] for i in range(0, len(chunk), size)]
    generator.shuffle(found)
    return found


def collate(encoded: dict, rows: list[int], device: str) -> dict:
    width = max(len(encoded["input_ids"][i]) for i in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for n, i in enumerate(rows):
        row = encoded["input_ids"][i]
        ids[n, : len(row)] = torch.tensor(row)
        mask[n, : len(row)] = 1
    return {"input_ids": ids.to(device, non_blocking=True), "attention_mask": mask.to(device, non_blocking=True)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--teacher", required=True)
    parser.add_argument("--data", required=True, help="a folder with GLUE's SST-2 train.tsv and dev.tsv")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None, help="stop after this many steps (default: the epochs)")
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--evaluations", type=int, default=8)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(42)
    tokenizer = AutoTokenizer.from_pretrained(args.teacher)
    teacher = AutoModelForSequenceClassification.from_pretrained(args.teacher, dtype=torch.float32).to(device).eval()
    depth = teacher.config.num_hidden_layers
    student = copy.deepcopy(teacher)
    kept = list(range(0, depth, 2))  # 6 layers -> 0, 2, 4 (the recipe); 12 -> 0, 2, ..., 10
    student.bert.encoder.layer = torch.nn.ModuleList(student.bert.encoder.layer[i] for i in kept)
    student.config.num_hidden_layers = len(kept)
    student.train()
    train_text, train_labels = read(f"{args.data}/train.tsv")
    dev_text, dev_labels = read(f"{args.data}/dev.tsv")
    train = tokenizer(train_text, truncation=True, max_length=66)
    dev = tokenizer(dev_text, truncation=True, max_length=66)
    lengths = [len(ids) for ids in train["input_ids"]]
    labels = torch.tensor(train_labels)
    per_epoch = -(-len(lengths) // 32)
    total = args.steps or per_epoch * args.epochs
    decay = [p for n, p in student.named_parameters() if not n.endswith(("bias", "LayerNorm.weight"))]
    rest = [p for n, p in student.named_parameters() if n.endswith(("bias", "LayerNorm.weight"))]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}],
                                  lr=5e-5, fused=device == "cuda")  # fmt: skip
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=int(0.06 * total), num_training_steps=total)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    generator, step, step_seconds, accuracies = random.Random(0), 0, 0.0, []
    evaluate_every = max(1, total // args.evaluations)
    setup_seconds = time.perf_counter() - started
    while step < total:
        for rows in batches(lengths, 32, 50, generator):
            if step == total:
                break
            began = time.perf_counter()
            batch = collate(train, rows, device)
            target = labels[rows].to(device, non_blocking=True)
            with autocast:
                with torch.no_grad():
                    taught = teacher(**batch).logits
                logits = student(**batch).logits
            logits, taught = logits.float(), taught.float()
            kl = F.kl_div(F.log_softmax(logits / 2, -1), F.softmax(taught / 2, -1), reduction="batchmean") * 4
            loss = 0.5 * F.cross_entropy(logits, target) + 0.5 * kl
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if not torch.isfinite(loss):
                raise SystemExit("loss went non-finite")
            step += 1
            step_seconds += time.perf_counter() - began
            if step % evaluate_every == 0:
                accuracies.append(evaluate(student, dev, dev_labels, device, autocast))
    print(json.dumps({
        "steps": step, "step_seconds": round(step_seconds, 1), "setup_seconds": round(setup_seconds, 1),
        "samples_per_second": round(32 * step / step_seconds, 1), "dev_accuracy_best": max(accuracies, default=None),
        "dev_accuracy_last": accuracies[-1] if accuracies else None, "evaluations": len(accuracies), "device": device,
        "peak_gpu_memory_bytes": torch.cuda.max_memory_allocated() if device == "cuda" else None,
        "process_seconds": round(time.perf_counter() - started, 1),
    }))  # fmt: skip


@torch.no_grad()
def evaluate(student, dev: dict, labels: list[int], device: str, autocast) -> float:
    student.eval()
    right = 0
    for start in range(0, len(labels), 64):
        rows = list(range(start, min(start + 64, len(labels))))
        with autocast:
            predicted = student(**collate(dev, rows, device)).logits.argmax(-1).cpu()
        right += int((predicted == torch.tensor(labels[start : start + 64])).sum())
    student.train()
    return round(100 * right / len(labels), 2)


if __name__ == "__main__":
    main()
