"""A tiny random-weight Qwen2 chat model, saved like a real Hugging Face model directory.

The directory holds what a downloaded Qwen2.5 instruct model holds (config.json, weights,
generation_config.json, tokenizer files with a ChatML chat template), so the worker loads it
through exactly the same code path. Its weights are random: the text it writes is noise.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, trainers
from tokenizers.models import BPE
from transformers import (
    AutoTokenizer,
    GenerationConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

logger = logging.getLogger(__name__)

END_OF_TEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (END_OF_TEXT, IM_START, IM_END)
VOCAB_SIZE = 1200
MAX_POSITIONS = 1024
WEIGHTS_SEED = 1234

# Qwen2's own pre-tokenizer split pattern. transformers 5 rebuilds a "qwen2" tokenizer with
# this split (then ByteLevel without its regex, NFC), so training with anything else would
# give different ids after AutoTokenizer reloads the directory.
QWEN2_SPLIT_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

CHAT_TEMPLATE = (
    "{%- if not messages or messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

CORPUS = (
    "知识库问答系统把文档切成小段，先检索相关段落，再让大模型根据这些段落回答问题。",
    "中文文本没有空格分词，所以检索时常用结巴分词配合关键词索引。",
    "向量检索把每个段落编码成向量，用余弦相似度找出最接近问题的内容。",
    "如果模型无法访问互联网，所有模型文件都必须提前放在本地目录中。",
    "用户上传的文件可以是纯文本、网页、表格、演示文稿或者扫描的图片。",
    "扫描件需要先经过光学字符识别，才能得到可以检索的文字。",
    "上下文窗口有限，过长的对话历史需要从最早的消息开始删除。",
    "流式输出让用户在生成完成之前就能看到第一个字。",
    "温度为零时模型每一步都选择概率最高的词，结果是确定的。",
    "设置随机种子以后，同样的请求会得到同样的采样结果。",
    "停止词出现时，生成立即结束，停止词本身不返回给用户。",
    "今天天气很好，我们去公园散步，顺便讨论一下项目的进度。",
    "北京、上海、广州和深圳都是中国的大城市。",
    "请用简洁的语言总结这篇文章的主要观点，并给出三个要点。",
    "数据库保存文档的元数据，向量索引只保存编号和向量。",
    "A knowledge base answers questions from your own documents without sending them anywhere.",
    "The worker loads a chat model once and serves it over the OpenAI wire format.",
    "Streaming responses are sent as server-sent events, one small JSON chunk at a time.",
    "When the client disconnects, the generation stops and the next request can start.",
    "Numbers like 1, 2, 3, 42, 2024 and 3.14 appear in tables and reports.",
    "Please answer in Chinese if the question is written in Chinese.",
    "def hello(name: str) -> str:\n    return f'Hello, {name}!'\n",
)


def _train_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=1,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Repeating the corpus makes merge frequencies distinct enough for a stable vocabulary.
    tokenizer.train_from_iterator(list(CORPUS) * 3, trainer=trainer)
    return tokenizer


def _wrap_tokenizer(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer,
        eos_token=IM_END,
        pad_token=END_OF_TEXT,
        unk_token=None,
        bos_token=None,
        additional_special_tokens=[IM_START, IM_END],
        chat_template=CHAT_TEMPLATE,
        model_max_length=MAX_POSITIONS,
        clean_up_tokenization_spaces=False,
    )


def build_tiny_qwen(directory: Path) -> Path:
    """Write a tiny Qwen2 chat model into ``directory`` (created if needed) and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = _wrap_tokenizer(_train_tokenizer())
    end_of_text_id = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    im_end_id = tokenizer.convert_tokens_to_ids(IM_END)
    assert isinstance(end_of_text_id, int)
    assert isinstance(im_end_id, int)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=end_of_text_id,
        eos_token_id=im_end_id,
        pad_token_id=end_of_text_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(WEIGHTS_SEED)
    model = Qwen2ForCausalLM(config)
    # The sampling defaults of a real Qwen2.5 instruct model, so requests must override them.
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=end_of_text_id,
        eos_token_id=[im_end_id, end_of_text_id],
        pad_token_id=end_of_text_id,
        do_sample=True,
        temperature=0.7,
        top_p=0.8,
        top_k=20,
        repetition_penalty=1.05,
    )
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    _check_reload(directory, tokenizer)
    logger.info("tiny Qwen2 written to %s (vocab %d)", directory, len(tokenizer))
    return directory


def _check_reload(directory: Path, saved: PreTrainedTokenizerFast) -> None:
    reloaded = AutoTokenizer.from_pretrained(directory)
    sample = f"{IM_START}user\n{CORPUS[0]} {CORPUS[16]} 未见过的字：麒麟{IM_END}\n"
    expected = saved(sample, add_special_tokens=False)["input_ids"]
    actual = reloaded(sample, add_special_tokens=False)["input_ids"]
    if expected != actual:
        raise RuntimeError(f"tiny Qwen2 tokenizer ids change on reload from {directory}")
