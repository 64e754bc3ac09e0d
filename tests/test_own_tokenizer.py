"""Students with a vocabulary of their own: each reads its own token ids, and only sentence-level losses cross."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast, RobertaConfig, RobertaModel

from distill.errors import DistillError
from distill.plugins.losses import HardLabelCE, HiddenStatesKD, LogitsKD, PooledKD
from distill.students.encoder import EncoderStudent
from distill.students.pretrained import PretrainedStudent
from distill.training.module import DistillationModule
from tests.conftest import SST2, base_config, cli_error, run_cli, write_config
from tests.plugins.conftest import compress

SENTENCES = [line.split("\t")[0] for line in (SST2 / "train.tsv").read_text().splitlines()[1:3001]]


def byte_level_bpe(folder: Path) -> Path:
    """A RoBERTa-style byte-level BPE of 800 pieces, trained on SST-2 sentences: lossless, so ids decode exactly."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = decoders.ByteLevel()
    special = ["<pad>", "<s>", "</s>", "<unk>"]
    tokenizer.train_from_iterator(SENTENCES, trainers.BpeTrainer(vocab_size=800, special_tokens=special))
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 1))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        cls_token="<s>", sep_token="</s>", model_input_names=["input_ids", "attention_mask"],
    )  # fmt: skip
    fast.save_pretrained(folder)
    return folder


def word_pieces(folder: Path, pieces: int = 1500) -> Path:
    """A BERT-style WordPiece of `pieces` pieces trained on SST-2 sentences."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer.train_from_iterator(SENTENCES, trainers.WordPieceTrainer(vocab_size=pieces, special_tokens=special))
    tokenizer.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]",
    )  # fmt: skip
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def bpe(tmp_path_factory) -> Path:
    return byte_level_bpe(tmp_path_factory.mktemp("bpe"))


class SeenIds(torch.nn.Module):
    """Records the batches the student's Hugging Face model is called with."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def __call__(self, module, args, kwargs) -> None:
        self.seen.append((kwargs["input_ids"].clone(), kwargs["attention_mask"].clone()))


def roberta_checkpoint(folder: Path, tokenizer: Path) -> Path:
    """A tiny pretrained RoBERTa saved with the byte-level BPE: a checkpoint of another family and vocabulary."""
    own = AutoTokenizer.from_pretrained(tokenizer)
    config = RobertaConfig(
        vocab_size=len(own), hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
        pad_token_id=own.pad_token_id, max_position_embeddings=80,
    )  # fmt: skip
    RobertaModel(config).save_pretrained(folder)
    own.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind", ["encoder", "pretrained"])
def test_a_student_with_another_vocabulary_trains_on_its_own_ids(kind, tiny_teacher, bpe, tmp_path):
    probe = SeenIds()
    if kind == "encoder":
        student = EncoderStudent(family="roberta", tokenizer=str(bpe), num_layers=1, hidden_size=32, num_heads=4)
    else:
        student = PretrainedStudent(model=str(roberta_checkpoint(tmp_path / "roberta", bpe)))
    module = DistillationModule(task="sst2", teacher=str(tiny_teacher), student=student, losses=[LogitsKD()])
    module.student.model.register_forward_pre_hook(probe, with_kwargs=True)
    module, data = compress(tiny_teacher, tmp_path, [], steps=3, module=module)
    own = AutoTokenizer.from_pretrained(bpe)
    texts = set(data.read("train")["sentence"])
    decoded = [
        own.decode(ids[mask.bool()], skip_special_tokens=True).strip()
        for ids, masks in probe.seen
        for ids, mask in zip(ids, masks, strict=True)
    ]
    assert len(decoded) >= 3 * 16
    assert all(text in texts for text in decoded)  # byte-level BPE is lossless: the student's ids are the text
    assert max(int(ids.max()) for ids, _ in probe.seen) < len(own)  # ids of its own 800-piece vocabulary
    assert module.student.model.get_input_embeddings().num_embeddings == len(own)


def test_a_token_level_loss_across_tokenizers_is_refused_at_set_up(tiny_teacher, bpe):
    student = EncoderStudent(family="roberta", tokenizer=str(bpe), num_layers=1)
    with pytest.raises(DistillError) as refused:
        DistillationModule(task="sst2", teacher=str(tiny_teacher), student=student, losses=[HiddenStatesKD()])
    message = str(refused.value)
    assert "'hidden_states'" in message and "800 pieces" in message and "30522 pieces" in message
    sentence_level = [HardLabelCE(), LogitsKD(), PooledKD()]  # these cross tokenizers
    DistillationModule(task="sst2", teacher=str(tiny_teacher), student=student, losses=sentence_level)


def test_vocabulary_pruning_and_the_report_card_use_the_students_own_tokenizer(tiny_teacher, tmp_path):
    own_dir = word_pieces(tmp_path / "wordpiece")
    config = base_config(tiny_teacher, tmp_path)
    config["model"]["student"] = {
        "class_path": "EncoderStudent",
        "init_args": {"tokenizer": str(own_dir), "num_layers": 1},
    }
    config["model"]["compression"] = [{"class_path": "VocabularyPruning"}]
    run_cli("fit", "--config", str(write_config(tmp_path / "own.yaml", config)), "--run_name", "own")
    export = tmp_path / "own" / "student"
    kept = AutoTokenizer.from_pretrained(export)
    assert 100 < len(kept) < 1500  # the pieces the training rows used, out of the student's own 1,500
    vocabulary = json.loads((own_dir / "tokenizer.json").read_text())["model"]["vocab"]
    assert set(kept.get_vocab()) <= set(vocabulary)
    card = json.loads((export / "card.json").read_text())
    assert 0.0 <= card["dev_metrics"]["accuracy"] <= 1.0
    report = json.loads((tmp_path / "own" / "report.json").read_text())
    assert report["rows"][1]["parameters"] < report["rows"][0]["parameters"]


def test_vocabulary_pruning_refuses_a_bpe_tokenizer(tiny_teacher, bpe, tmp_path):
    config = base_config(tiny_teacher, tmp_path)
    settings = {"tokenizer": str(bpe), "family": "roberta", "num_layers": 1}
    config["model"]["student"] = {"class_path": "EncoderStudent", "init_args": settings}
    config["model"]["compression"] = [{"class_path": "VocabularyPruning"}]
    message = cli_error("fit", "--config", str(write_config(tmp_path / "bpe.yaml", config)))
    assert "VocabularyPruning rebuilds WordPiece vocabularies" in message and "BPE" in message
