"""Checks that an exported model embeds like the original, on a fixed set of probe texts.

The probes are half Chinese, half English: paraphrase pairs, near-duplicates (one word
changed), unrelated sentences and a few chunk-length passages, since int8 error grows with
length. A check compares two embeddings of the probes row by row (cosine) and by each probe's
nearest neighbour among the others, which is what retrieval ranking depends on.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel

# The float ONNX graph must reproduce torch; only float rounding may differ.
MIN_FLOAT_COSINE: Final = 0.999
# int8 is accepted only at or above this cosine on every probe, with every clear nearest
# neighbour kept.
MIN_INT8_COSINE: Final = 0.98
# A nearest neighbour is clear when it is this much more similar than the runner-up. Closer
# ones are ties (an unrelated sentence's "nearest" one, at 0.117 against 0.111 for MiniLM)
# that int8's noise of a few hundredths may reorder without any effect on retrieval.
CLEAR_NEIGHBOUR_LEAD: Final = 0.05

_ZH_PASSAGE = (
    "知识库问答系统先把上传的文档切分成两三百字的片段，再用向量模型把每个片段编码成向量存入索引。"
    "用户提问时，系统把问题同样编码，找出最相近的若干片段，连同问题一起交给大语言模型生成回答，"
    "并在回答后列出引用的出处，方便用户核对原文。"
)
_EN_PASSAGE = (
    "A retrieval-augmented assistant splits every uploaded document into chunks of a few "
    "hundred characters and stores one vector per chunk in an index. When a question arrives "
    "it is embedded the same way, the closest chunks are retrieved and handed to a language "
    "model together with the question, and the answer cites the passages it used."
)

PROBE_TEXTS: Final = (
    # Chinese: paraphrase pairs
    "如何申请退款？",
    "退款应该怎么申请？",
    "公司每年给员工十五天年假。",
    "员工每年可以休十五天的年假。",
    "向量检索把文本转换成向量再比较相似度。",
    "向量搜索先将文字编码为向量，然后计算相似度。",
    "明天北京有大雨，出门请带伞。",
    "北京明天会下大雨，记得带雨伞。",
    # Chinese: near-duplicates
    "本产品的保修期为一年。",
    "本产品的保修期为两年。",
    "服务器每天凌晨两点自动备份数据库。",
    "服务器每天凌晨三点自动备份数据库。",
    # Chinese: unrelated
    "熊猫主要以竹子为食。",
    "这道菜需要先把鸡蛋打散再下锅。",
    "量子计算利用叠加态进行并行运算。",
    "他在马拉松比赛中跑出了个人最好成绩。",
    # Chinese: chunk-length passages
    _ZH_PASSAGE,
    _ZH_PASSAGE.replace("两三百字", "五百字左右").replace("大语言模型", "本地模型"),
    "合同约定，乙方应在收到货款后三十日内交付全部设备，并负责安装调试；逾期交付的，每逾期一日"
    "按合同总价的千分之一支付违约金。设备验收合格后进入为期一年的质保期，质保期内的维修费用由"
    "乙方承担，人为损坏除外。",
    "大熊猫是中国特有的珍稀动物，主要生活在四川、陕西和甘肃的山区竹林中。成年大熊猫每天要花十"
    "几个小时进食，一天能吃掉十几公斤竹子。由于栖息地破碎和繁殖率低，保护区的建立对它们的生存"
    "至关重要。",
    # English: paraphrase pairs
    "How do I request a refund?",
    "What is the process for getting my money back?",
    "Employees get fifteen days of paid leave each year.",
    "Each year staff are entitled to fifteen days of paid vacation.",
    "The central bank raised interest rates this quarter.",
    "Interest rates were increased by the central bank in this quarter.",
    "Heavy rain is expected in Beijing tomorrow, so take an umbrella.",
    "Bring an umbrella: Beijing will see heavy rain tomorrow.",
    # English: near-duplicates
    "The warranty on this product lasts one year.",
    "The warranty on this product lasts two years.",
    "The server backs up the database every night at two o'clock.",
    "The server backs up the database every night at three o'clock.",
    # English: unrelated
    "Pandas eat mostly bamboo.",
    "Whisk the eggs before pouring them into the pan.",
    "Quantum computers exploit superposition to compute in parallel.",
    "She set a personal best in the marathon.",
    # English: chunk-length passages
    _EN_PASSAGE,
    _EN_PASSAGE.replace("a few hundred", "about five hundred").replace("language", "local"),
    "Under the contract the supplier shall deliver all equipment within thirty days of "
    "receiving payment and install and commission it; for each day of delay it pays a penalty "
    "of one tenth of a percent of the contract price. After acceptance a one-year warranty "
    "applies, during which repairs are at the supplier's expense except for misuse.",
    "Giant pandas live only in the mountain bamboo forests of central China. An adult spends "
    "ten or more hours a day eating and can get through more than ten kilograms of bamboo. "
    "Because their habitat is fragmented and they breed slowly, nature reserves are essential "
    "to their survival.",
)


class ProbeAgreement(BaseModel):
    """How closely one embedding of the probes follows a reference embedding of them."""

    probes: int
    min_cosine: float
    mean_cosine: float
    # Probes whose nearest other probe is the same in both embeddings (ties included).
    same_nearest_neighbour: int
    # Probes whose nearest neighbour is clear in the reference (CLEAR_NEIGHBOUR_LEAD), and how
    # many of those keep it in the candidate.
    clear_neighbours: int
    same_clear_neighbour: int

    def accepted(self, min_cosine: float) -> bool:
        return self.min_cosine >= min_cosine and self.same_clear_neighbour == self.clear_neighbours

    def describe(self) -> str:
        return (
            f"min cosine {self.min_cosine:.4f}, mean {self.mean_cosine:.4f}, nearest neighbour "
            f"kept for {self.same_clear_neighbour}/{self.clear_neighbours} probes with a clear "
            f"one ({self.same_nearest_neighbour}/{self.probes} with ties)"
        )


def compare_embeddings(
    reference: NDArray[np.float32], candidate: NDArray[np.float32]
) -> ProbeAgreement:
    """Row-wise cosine and nearest-neighbour agreement of two (probes, dimension) matrices."""
    if reference.shape != candidate.shape or reference.shape[0] < 3:
        raise ValueError(f"cannot compare shapes {reference.shape} and {candidate.shape}")
    reference_rows = _unit_rows(reference)
    candidate_rows = _unit_rows(candidate)
    cosines = np.sum(reference_rows * candidate_rows, axis=1)
    reference_similarities = _similarities(reference_rows)
    ranked = np.argsort(-reference_similarities, axis=1)
    nearest, runner_up = ranked[:, 0], ranked[:, 1]
    rows = np.arange(len(nearest))
    lead = reference_similarities[rows, nearest] - reference_similarities[rows, runner_up]
    clear = lead >= CLEAR_NEIGHBOUR_LEAD
    same = nearest == np.argmax(_similarities(candidate_rows), axis=1)
    return ProbeAgreement(
        probes=int(reference.shape[0]),
        min_cosine=float(cosines.min()),
        mean_cosine=float(cosines.mean()),
        same_nearest_neighbour=int(np.sum(same)),
        clear_neighbours=int(np.sum(clear)),
        same_clear_neighbour=int(np.sum(same & clear)),
    )


def _unit_rows(vectors: NDArray[np.float32]) -> NDArray[np.float64]:
    as_float64 = vectors.astype(np.float64)
    norms = np.linalg.norm(as_float64, axis=1, keepdims=True)
    unit: NDArray[np.float64] = as_float64 / np.maximum(norms, 1e-12)
    return unit


def _similarities(unit_rows: NDArray[np.float64]) -> NDArray[np.float64]:
    """Cosine of every pair, a probe's similarity to itself left out (-inf)."""
    similarities: NDArray[np.float64] = unit_rows @ unit_rows.T
    np.fill_diagonal(similarities, -np.inf)
    return similarities
