"""The `distill` command's front door: its own help at once, and each command handed to the module that runs it,
so asking what distill can do costs no import of torch, Lightning or transformers."""

from __future__ import annotations

import sys

COMMANDS = {  # every command, with one line in distill's own words
    "fit": "distil a student from a teacher on a YAML config, export it, and write its report card",
    "validate": "score a training checkpoint on the validation split",
    "test": "score a training checkpoint on the test split (the validation split where the data has none)",
    "predict": "label a file (CSV, TSV, JSON, JSONL or Parquet) with an exported model",
    "export": "export a training checkpoint, or add ONNX files and method variants (int8, bf16) to an export",
    "bench": "measure exported students against their teacher in one process: metric, size and latency",
    "plugins": "list the installed plugins and the names each adds (tasks, losses, students, methods, formats)",
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        "usage: distill COMMAND [options]",
        "",
        "Knowledge distillation and compression for BERT-style encoders: a smaller, faster student and a report",
        "card of what it cost against the teacher (metric, size, latency).",
        "",
        "commands:",
        *(f"  {name:<{width}}  {line}" for name, line in COMMANDS.items()),
        "",
        "`distill COMMAND --help` lists a command's options; `distill fit --config configs/quickstart.yaml` is a",
        "first run (README.md).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `distill` console script."""
    arguments = sys.argv[1:] if argv is None else argv
    if not arguments or arguments[0] in ("-h", "--help"):
        print(usage())
        return
    if arguments[0] not in COMMANDS:
        sys.exit(
            f"distill: error: unknown command {arguments[0]!r}: choose from {', '.join(COMMANDS)} (distill --help)"
        )
    if arguments[0] == "plugins":  # the registry alone: no Lightning, no CLI parser
        from distill.errors import DistillError
        from distill.registry import plugins_listing

        try:
            print(plugins_listing())
        except DistillError as error:
            sys.exit(f"distill: error: {error}")
        return
    from distill.cli import main as run  # the commands themselves need the whole stack

    run(arguments)


if __name__ == "__main__":
    main()
