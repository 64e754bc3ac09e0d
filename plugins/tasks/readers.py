"""The file layouts the built-in tasks read beyond plain tables: CoNLL columns (token classification) and SQuAD JSON
(extractive QA)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import ClassVar

from typing_extensions import override

from distill import DistillError, FileReader, lazy_module

datasets = lazy_module("datasets")

_SQUAD_START = re.compile(r'\s*\{\s*("version"\s*:\s*"[^"]*"\s*,\s*)?"data"\s*:\s*\[\s*\{')


class ConllReader(FileReader):
    """CoNLL-style sentences (one token per line, its tag in the last column, a blank line between sentences): a
    `tokens` and a `tags` column. Files named .txt need `data.files.format: conll`."""

    name: ClassVar[str] = "conll"
    suffixes: ClassVar[tuple[str, ...]] = (".conll",)
    row: ClassVar[str] = "sentence"

    @classmethod
    @override
    def read(cls, path: Path) -> datasets.Dataset:
        """Whitespace-separated columns, the token first and its tag last, a blank line between sentences,
        `-DOCSTART-` lines skipped.

        Raises:
            DistillError: a line has another number of columns than the file's first line (its number is given).
        """
        tokens: list[list[str]] = []
        tags: list[list[str]] = []
        width = None
        sentence: list[tuple[str, str]] = []
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                fields = line.split()
                if not fields or fields[0] == "-DOCSTART-":
                    if sentence:
                        tokens.append([t for t, _ in sentence])
                        tags.append([g for _, g in sentence])
                        sentence = []
                    continue
                width = width or len(fields)
                if len(fields) != width or width < 2:
                    raise DistillError(
                        f"{path}, line {number}: {len(fields)} column(s) where the file's lines have {width} "
                        f"(a token first, its tag last): fix that line"
                    )
                sentence.append((fields[0], fields[-1]))
        if sentence:
            tokens.append([t for t, _ in sentence])
            tags.append([g for _, g in sentence])
        return datasets.Dataset.from_dict({"tokens": tokens, "tags": tags})


class SquadReader(FileReader):
    """SQuAD v1.1 and v2.0 JSON (data > paragraphs > qas), recognised by how the file opens: one row per question in
    the hub's squad columns (id, title, context, question, answers with text and answer_start)."""

    name: ClassVar[str] = "squad"
    row: ClassVar[str] = "question"

    @classmethod
    @override
    def recognises(cls, path: Path) -> bool:
        """Whether a .json file opens the way SQuAD's do: {"version": ..., "data": [{"title": ..., "paragraphs"."""
        if not path.is_file():
            return False
        with path.open(encoding="utf-8", errors="replace") as handle:
            head = handle.read(65536)
        return bool(_SQUAD_START.match(head)) and '"paragraphs"' in head

    @classmethod
    @override
    def read(cls, path: Path) -> datasets.Dataset:
        """A SQuAD v1.1 or v2.0 file, one row per question, in the hub's squad columns; an unanswerable (v2)
        question has no answers.

        Raises:
            DistillError: an article, paragraph or question lacks a key SQuAD files have (its place is named).
        """
        articles = json.loads(path.read_text(encoding="utf-8"))["data"]
        rows: dict[str, list] = {"id": [], "title": [], "context": [], "question": [], "answers": []}
        for a, article in enumerate(articles):
            for p, paragraph in enumerate(article.get("paragraphs", [])):
                place = f"{path}, article {a + 1} ({article.get('title', 'untitled')}), paragraph {p + 1}"
                if "context" not in paragraph or "qas" not in paragraph:
                    raise DistillError(f"{place}: a SQuAD paragraph needs 'context' and 'qas': fix the file")
                for q, qa in enumerate(paragraph["qas"]):
                    if "question" not in qa or "answers" not in qa:
                        raise DistillError(f"{place}, question {q + 1}: needs 'question' and 'answers': fix the file")
                    answers = [] if qa.get("is_impossible") else qa["answers"]
                    rows["id"].append(str(qa.get("id", f"{a}-{p}-{q}")))
                    rows["title"].append(article.get("title", ""))
                    rows["context"].append(paragraph["context"])
                    rows["question"].append(qa["question"])
                    rows["answers"].append(
                        {
                            "text": [x["text"] for x in answers],
                            "answer_start": [int(x["answer_start"]) for x in answers],
                        }
                    )
        features = datasets.Features(
            {
                **{name: datasets.Value("string") for name in ("id", "title", "context", "question")},
                "answers": {
                    "text": datasets.List(datasets.Value("string")),
                    "answer_start": datasets.List(datasets.Value("int32")),
                },
            }
        )
        return datasets.Dataset.from_dict(rows, features=features)
