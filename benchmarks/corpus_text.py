"""Varied Chinese prose for the benchmark corpus: word lists, sentence patterns, documents."""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Callable

_W = str.split
SUBJECTS = _W(
    "知识库 向量索引 嵌入模型 分词器 检索器 重排序模型 本地大模型 文档解析器 切分器 关键词索引 "
    "任务队列 权限模块 网页界面 接口服务 配置文件 OCR引擎 表格解析器 日志系统 元数据库 缓存层"
)
VERBS = _W("提升了 降低了 简化了 加快了 改变了 决定了 稳定了 拖慢了 影响了 保证了 削弱了 放大了")
METRICS = _W(
    "回答准确率 查询延迟 内存占用 索引体积 引用精度 上传速度 启动时间 召回率 吞吐量 磁盘占用 "
    "首字延迟 并发能力"
)
CONTEXTS = _W(
    "在离线环境中 对于中文文档 当并发用户增多时 在只有两个核心的机器上 经过三轮压测 在默认配置下 "
    "升级到新版本以后 处理扫描件时 面对上万个文件时 在批量导入期间 切换到PostgreSQL后 关闭重排序时"
)
ROLES = _W("运维人员 开发者 管理员 普通用户 测试团队 客服部门 数据分析师 产品经理")
ACTIONS = _W("检查 调整 备份 重建 清理 升级 记录 限制 比较 复核")
SETTINGS = _W("chunk_size top_k batch_size score_threshold cache_size rrf_k chunk_overlap")
TERMS = _W("FAISS BM25 RapidOCR SQLite FastAPI Streamlit pgvector jieba ONNX MiniLM")
PROBLEMS = _W("偶发超时 编码错乱 索引损坏 内存泄漏 排序不稳 标题丢失 重复入库 进度卡住 日志过多")
REASONS = _W(
    "模型首次加载需要读取权重 扫描页必须先做文字识别 表格每一行都会单独成块 索引文件需要整体重写 "
    "中文句子缺少空格分隔 批次中的文本长短不一 另一个核心被其他进程占用 数据库事务等待文件锁"
)
CITIES = _W("北京 上海 广州 深圳 杭州 成都 武汉 西安 南京 苏州 重庆 天津 长沙 郑州 青岛 厦门")
INDUSTRIES = _W("制造 金融 教育 医疗 零售 物流 能源 政务 传媒 电信")
SURNAMES = _W("王 李 张 刘 陈 杨 赵 黄 周 吴 徐 孙 马 朱 胡 郭 何 林")
GIVEN = _W("伟 芳 娜 敏 静 磊 洋 勇 艳 杰 涛 明 超 霞 平 刚 桂英 建华 志强 海燕")
MENU = _W("首页 知识库管理 文件上传 对话 检索测试 任务列表 系统设置 用户权限 日志 帮助")
BUTTONS = _W("保存 取消 重建索引 上传文件 删除 确定 导出 刷新 开始检索 提交")
NUMERALS = "一二三四五六七八九十"
PRICES = (0, 99, 199, 499, 999, 2999, 9999)


# A sentence pattern's {field}s are filled one by one, each with a fresh random choice.
TEMPLATES = (
    "{context}，{subject}{verb}{metric}，幅度约为{pct}。",
    "{role}应当定期{action}{subject}的{setting}参数，否则容易出现{problem}。",
    "根据第{number}号实验记录，{subject}{context}的{metric}为{number}毫秒。",
    "与{subject}相比，{subject}{verb}{metric}，但也带来了{problem}的风险。",
    "如果{subject}出现{problem}，{role}可以先{action}日志，再{action}{subject}。",
    "{subject}默认使用{term}，{setting} 的取值为 {number}。",
    "{date}发布的 {version} 修复了{subject}{context}{problem}的问题。",
    "为什么{subject}{verb}{metric}？主要原因是{reason}。",
    "{role}反馈说，{context}{metric}明显变化，排查后发现{reason}。",
    "建议把 {setting} 设为 {number}，这样{subject}在{industry}行业的文档上表现更稳定。",
    "{person}在{city}的测试中记录到{metric}下降了{pct}，{term} 的版本没有变化。",
    "{term} 与 {term} 配合使用时，{subject}{verb}{metric}。",
)
_FIELD = re.compile(r"\{(\w+)\}")


class Prose:
    """Varied Chinese sentences: a dozen patterns filled from word lists."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        words = {
            "context": CONTEXTS, "subject": SUBJECTS, "verb": VERBS, "metric": METRICS,
            "role": ROLES, "action": ACTIONS, "setting": SETTINGS, "problem": PROBLEMS,
            "term": TERMS, "reason": REASONS, "industry": INDUSTRIES, "city": CITIES,
        }  # fmt: skip
        self.fields: dict[str, Callable[[], str]] = {
            name: functools.partial(rng.choice, choices) for name, choices in words.items()
        }
        self.fields.update(
            pct=self.pct,
            date=self.date,
            person=self.name,
            number=lambda: str(rng.randint(2, 998)),
            version=lambda: f"v{rng.randint(1, 4)}.{rng.randint(0, 12)}.{rng.randint(0, 9)}",
        )

    def fill(self, template: str) -> str:
        return _FIELD.sub(lambda match: self.fields[match.group(1)](), template)

    def pct(self) -> str:
        return f"{self.rng.randint(1, 95)}%"

    def date(self) -> str:
        rng = self.rng
        return f"{rng.randint(2021, 2025)}年{rng.randint(1, 12)}月{rng.randint(1, 28)}日"

    def sentence(self) -> str:
        return self.fill(self.rng.choice(TEMPLATES))

    def paragraph(self, low: int = 3, high: int = 7) -> str:
        return "".join(self.sentence() for _ in range(self.rng.randint(low, high)))

    def heading(self) -> str:
        return f"{self.rng.choice(SUBJECTS)}的{self.rng.choice(METRICS)}"

    def name(self) -> str:
        return self.rng.choice(SURNAMES) + self.rng.choice(GIVEN)


_CODE_SAMPLES = (
    ("bash", "python init_database.py --recreate-vs -n {kb}\npython startup.py -a"),
    ("yaml", "splitter:\n  chunk_size: {n}\n  chunk_overlap: 50\nembedding:\n  batch_size: 32"),
    (
        "python",
        "from kb_server.settings import load_settings\n\n"
        "settings = load_settings()\nprint(settings.splitter.chunk_size)  # {n}",
    ),
    ("json", '{{"knowledge_base_name": "{kb}", "top_k": 3, "score_threshold": 0.{n}}}'),
)


def markdown_document(prose: Prose, title: str, target_chars: int) -> str:
    rng = prose.rng
    parts = [f"# {title}", "", prose.paragraph(2, 4), ""]
    section = 0
    while sum(len(part) for part in parts) < target_chars:
        section += 1
        parts += [f"## {NUMERALS[(section - 1) % 10]}、{prose.heading()}", "", prose.paragraph()]
        for sub in range(1, rng.randint(2, 3)):
            parts += ["", f"### {section}.{sub} {prose.heading()}", "", prose.paragraph(2, 5)]
        kind = rng.randrange(4)
        if kind == 0:
            parts += [""] + [f"- {prose.sentence()}" for _ in range(rng.randint(3, 6))]
        elif kind == 1:
            steps = [f"{i}. {rng.choice(ROLES)}{prose.sentence()}" for i in range(1, 5)]
            parts += ["", *steps]
        elif kind == 2:
            language, code = rng.choice(_CODE_SAMPLES)
            body = code.format(kb=f"kb_{rng.randint(1, 99)}", n=rng.randint(100, 999))
            parts += ["", f"```{language}", body, "```"]
        else:
            rows = [
                f"| {rng.choice(SUBJECTS)} | {rng.choice(TERMS)} | {prose.pct()} |" for _ in "123"
            ]
            parts += ["", "| 组件 | 实现 | 占比 |", "| --- | --- | --- |", *rows]
        parts.append("")
    return "\n".join(parts) + "\n"


def text_document(prose: Prose, target_chars: int) -> str:
    lines = ["会议纪要：知识库项目周会", ""]
    meeting = 0
    while sum(len(line) for line in lines) < target_chars:
        meeting += 1
        lines += [f"第{meeting}次会议（{prose.date()}，记录人：{prose.name()}）", ""]
        lines += [prose.paragraph(4, 9) for _ in range(prose.rng.randint(2, 4))]
        lines.append("")
    return "\n".join(lines)
