"""What the teacher cache holds per SST-2 training example for a bert-base-shaped teacher (12 layers, width 768),
from the real token counts of SST-2's 67,349 training sentences (max_length 66, the recipes' setting) and the
layout distill builds: logits only; the hidden states HiddenStatesKD reads when a 6-layer student maps uniformly
onto the 12 teacher layers (7 of 13); and every layer.

    python benchmarks/cache_bytes.py

Writes benchmarks/results/cache_bytes.json; render.py puts it into RESULTS.md.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from types import SimpleNamespace

from transformers import AutoTokenizer

from distill import Anatomy
from distill.plugins.losses import HiddenStatesKD
from distill.training.cache import cache_layout

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1] / "shared"


def main() -> None:
    tokenizer = AutoTokenizer.from_pretrained(SHARED / "teachers" / "minilm-l6-sst2")
    rows = (SHARED / "data" / "glue" / "SST-2" / "train.tsv").read_text().splitlines()[1:]
    lengths = [
        len(ids) for ids in tokenizer([r.split("\t")[0] for r in rows], truncation=True, max_length=66)["input_ids"]
    ]
    teacher = SimpleNamespace(anatomy=Anatomy(family="teacher", provides=frozenset(), num_layers=12, hidden_size=768,
                                              num_heads=12, num_labels=2))  # fmt: skip
    loss = HiddenStatesKD()
    loss.setup(Anatomy(family="student", provides=frozenset(), num_layers=6, hidden_size=768), teacher.anatomy)
    layouts = {
        "logits": cache_layout(["logits"], teacher, None, False, len(lengths), lambda: lengths),
        "logits + the 7 layers HiddenStatesKD reads": cache_layout(
            ["logits", "hidden_states"], teacher, loss.teacher_layers(), False, len(lengths), lambda: lengths
        ),
        "logits + all 13 layers": cache_layout(
            ["logits", "hidden_states"], teacher, None, False, len(lengths), lambda: lengths
        ),  # fmt: skip
    }
    result = {
        "date": str(date.today()),
        "command": "python benchmarks/cache_bytes.py",
        "examples": len(lengths),
        "mean_real_tokens": round(sum(lengths) / len(lengths), 2),
        "bytes_per_example": {name: round(layout.bytes / len(lengths), 1) for name, layout in layouts.items()},
        "total_gib": {name: round(layout.bytes / 2**30, 3) for name, layout in layouts.items()},
        "padded_to_66_gib": round(2 * 66 * 768 * 7 * len(lengths) / 2**30, 3),
    }
    (HERE / "results" / "cache_bytes.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
