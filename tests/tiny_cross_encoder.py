"""A tiny random-weight BERT cross-encoder, saved like a downloaded reranker directory.

The directory holds what BAAI/bge-reranker-base holds in kind (config.json for a
single-label sequence classifier, weights, a WordPiece tokenizer), so the reranker loads it
through exactly the same code path. Its weights are random: its scores carry no meaning,
only the arithmetic from logits to scores can be checked against it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from tokenizers import Tokenizer, normalizers, pre_tokenizers, trainers
from tokenizers.models import WordPiece
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertTokenizer

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
VOCAB_SIZE = 600
MAX_POSITIONS = 512
WEIGHTS_SEED = 4321
# BERT's default (0.02) gives logits so close to zero that every score is about 0.5; wider
# random weights spread the scores, so a test can tell one pair's score from another's.
INITIALIZER_RANGE = 0.5

CORPUS = (
    "什么是知识库问答？它先检索相关段落，再根据段落回答问题。",
    "重排序模型同时读取问题和段落，给出一个相关性分数。",
    "中文文本没有空格，检索时常用结巴分词和关键词索引。",
    "向量检索把段落编码成向量，用余弦相似度找出最接近的内容。",
    "离线部署时，所有模型文件都必须提前放在本地目录中。",
    "北京、上海、广州和深圳都是中国的大城市。",
    "今天天气很好，我们去公园散步。",
    "A cross-encoder reads the question and the passage together and scores the pair.",
    "Hybrid retrieval fuses dense and keyword rankings before reranking the best candidates.",
    "Numbers like 1, 2, 3, 42 and 2024 appear in tables and reports.",
)


def _train_vocabulary() -> dict[str, int]:
    # BERT's own normalizer and pre-tokenizer: every CJK character becomes a word of its own,
    # so the vocabulary is character-level for Chinese and WordPiece for English.
    tokenizer = Tokenizer(WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=1,
        special_tokens=list(SPECIAL_TOKENS),
        show_progress=False,
    )
    tokenizer.train_from_iterator(list(CORPUS) * 2, trainer=trainer)
    return tokenizer.get_vocab()


def build_tiny_cross_encoder(directory: Path) -> Path:
    """Write a tiny single-label BERT cross-encoder into ``directory`` and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    # Built from the vocabulary the way transformers rebuilds a BERT tokenizer on load, so
    # the ids cannot change between saving and loading.
    tokenizer = BertTokenizer(vocab=_train_vocabulary(), model_max_length=MAX_POSITIONS)
    pad_id = tokenizer.convert_tokens_to_ids("[PAD]")
    assert isinstance(pad_id, int)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=MAX_POSITIONS,
        pad_token_id=pad_id,
        initializer_range=INITIALIZER_RANGE,
    )
    # One output: a relevance logit per pair, as in BAAI/bge-reranker-base.
    config.num_labels = 1
    torch.manual_seed(WEIGHTS_SEED)
    model = BertForSequenceClassification(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    _check_reload(directory, tokenizer)
    logger.info("tiny cross-encoder written to %s (vocab %d)", directory, len(tokenizer))
    return directory


def _check_reload(directory: Path, saved: BertTokenizer) -> None:
    reloaded = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    question, passage = "什么是重排序？", f"{CORPUS[1]} {CORPUS[7]} 未见过的字：麒麟"
    expected = saved(question, passage)
    actual = reloaded(question, passage)
    for field in ("input_ids", "token_type_ids"):
        if expected[field] != actual[field]:
            raise RuntimeError(f"tiny cross-encoder {field} change on reload from {directory}")
