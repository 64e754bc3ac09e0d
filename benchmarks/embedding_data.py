"""The embedding benchmark's data, from ../shared only (nothing is downloaded):

- passages.jsonl: every paragraph of the SQuAD 2.0 sample's 5 articles ({"id", "text"});
- queries.jsonl: every question, with the id of the paragraph it was asked about ({"query", "passage_id"});
- corpus.jsonl: unlabelled text to distil on ({"text"}): SST-2 training sentences, CoNLL-2003 training
  sentences and the paragraphs;
- triplets.jsonl: each question with its paragraph and, as a hard negative, the next paragraph of the same article
  ({"query", "positive", "negative"}), for margin-MSE. They are the questions queries.jsonl scores: train on them
  only to try the loss, never to measure retrieval.

    python benchmarks/embedding_data.py OUT_FOLDER [--sst2 N] [--conll N] [--queries N]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"


def retrieval_set(squad: Path, queries: int | None = None) -> tuple[list[dict], list[dict], list[dict]]:
    """(passages, queries, triplets): each paragraph once; each question with its paragraph's id; and each
    question with its paragraph and the article's next paragraph (the previous one for the last)."""
    passages, asked, triplets = [], [], []
    for a, article in enumerate(json.loads(squad.read_text())["data"]):
        paragraphs = [paragraph["context"] for paragraph in article["paragraphs"]]
        for p, paragraph in enumerate(article["paragraphs"]):
            pid = f"a{a}p{p}"
            passages.append({"id": pid, "text": paragraph["context"]})
            asked += [{"query": qa["question"], "passage_id": pid} for qa in paragraph["qas"]]
            negative = paragraphs[p + 1] if p + 1 < len(paragraphs) else paragraphs[p - 1]
            triplets += [{"query": qa["question"], "positive": paragraph["context"], "negative": negative}
                         for qa in paragraph["qas"]]  # fmt: skip
    return passages, asked[:queries], triplets[:queries]


def corpus(shared: Path, sst2: int, conll: int, passages: list[dict]) -> list[dict]:
    """Unlabelled sentences of three kinds: film reviews, news and encyclopaedia paragraphs."""
    reviews = [line.split("\t")[0] for line in (shared / "data/glue/SST-2/train.tsv").read_text().splitlines()[1:]]
    news, words = [], []
    for line in (shared / "data/conll2003/train.txt").read_text().splitlines():
        if line.strip() and not line.startswith("-DOCSTART-"):
            words.append(line.split()[0])
        elif words:
            news.append(" ".join(words))
            words = []
    texts = reviews[:sst2] + [s for s in news if len(s.split()) > 3][:conll] + [p["text"] for p in passages]
    return [{"text": text} for text in texts]


def write(folder: Path, sst2: int, conll: int, queries: int | None = None, shared: Path = SHARED) -> dict[str, Path]:
    """Write the four files into `folder`; returns their paths by name."""
    folder.mkdir(parents=True, exist_ok=True)
    passages, asked, triplets = retrieval_set(shared / "data/squad-v2-sample/dev-v2.0-sample.json", queries)
    files = {"passages": passages, "queries": asked, "corpus": corpus(shared, sst2, conll, passages),
             "triplets": triplets}  # fmt: skip
    paths = {}
    for name, rows in files.items():
        paths[name] = folder / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps(row) + "\n" for row in rows))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--sst2", type=int, default=20000)
    parser.add_argument("--conll", type=int, default=10000)
    parser.add_argument("--queries", type=int, default=None)
    args = parser.parse_args()
    paths = write(args.out, args.sst2, args.conll, args.queries)
    print(json.dumps({name: sum(1 for _ in path.open()) for name, path in paths.items()}))


if __name__ == "__main__":
    main()
