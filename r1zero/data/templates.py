"""Prompt templates by name. The template is an experimental variable (Dr. GRPO showed a template alone
can wreck or restore a base model), so a ``Template`` carries its name and exact text for recording.

Built in: ``r1zero`` (DeepSeek-R1 paper, Table 1), ``qwen-math`` (Qwen2.5-Math's chat format asking for
``\\boxed{}``, as used by Dr. GRPO and SimpleRL-Zoo), ``none`` (the raw question) and ``chat`` (the
tokenizer's own chat template, for instruct models). ``get_template(name, think=True)`` ends the prompt
with ``<think>`` so the model starts inside its reasoning. Add your own with ``register_template``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

__all__ = [
    "PLACEHOLDER",
    "TINY_DEMO_HEADER",
    "Template",
    "available_templates",
    "get_template",
    "register_template",
]

PLACEHOLDER = "{question}"


@dataclass(frozen=True)
class Template:
    """A named prompt format.

    Attributes:
        name: Registry name; ``"+think"`` is appended when the prompt ends with ``<think>``.
        text: The prompt with one ``{question}`` placeholder; every other character is literal
            (no ``str.format``, so LaTeX braces are safe). For chat templates, the user message.
        chat: Render ``text`` as the user turn of the tokenizer's chat template.
        think: End the prompt with ``<think>``.
        description: One line for help texts.
    """

    name: str
    text: str
    chat: bool = False
    think: bool = False
    description: str = ""

    def render(self, question: str, tokenizer: Any = None, think_prefix: bool | None = None) -> str:
        """The prompt for ``question``; ``think_prefix`` overrides the template's own ``think``.

        >>> get_template("none", think=True).render("What is 2+3?")
        'What is 2+3?\\n<think>'
        >>> get_template("r1zero").render("What is 2+3?", think_prefix=True)[-32:]
        'What is 2+3?. Assistant: <think>'
        """
        body = self.text.replace(PLACEHOLDER, question)
        if self.chat:
            if tokenizer is None or not getattr(tokenizer, "chat_template", None):
                raise ValueError(f"template {self.name!r} needs a tokenizer that has a chat_template")
            body = tokenizer.apply_chat_template(
                [{"role": "user", "content": body}], tokenize=False, add_generation_prompt=True
            )
        if self.think if think_prefix is None else think_prefix:
            body += "<think>" if body[-1:].isspace() else (" <think>" if body.endswith(":") else "\n<think>")
        return body

    def to_dict(self, tokenizer: Any = None) -> dict[str, Any]:
        """Name and text for run configs and eval results; chat templates also record the tokenizer's."""
        out = {"name": self.name, "text": self.text, "chat": self.chat, "think": self.think}
        if self.chat and tokenizer is not None:
            out["chat_template"] = getattr(tokenizer, "chat_template", None)
        return out


_TEMPLATES: dict[str, Template] = {}


def register_template(name: str, text: str, *, chat: bool = False, description: str = "") -> Template:
    """Register a template; the text must hold ``{question}`` exactly once. Duplicate names are an error.

    >>> t = register_template("doc-qa", "Q: {question}\\nA:")
    >>> t.render("2+2?")
    'Q: 2+2?\\nA:'
    """
    if text.count(PLACEHOLDER) != 1:
        raise ValueError(f"template {name!r} must contain {PLACEHOLDER} exactly once, got {text!r}")
    if "+" in name:
        raise ValueError(f"template name {name!r} may not contain '+' (reserved for '+think')")
    template = Template(name, text, chat=chat, description=description)
    existing = _TEMPLATES.get(name)
    if existing is not None and existing != template:
        raise ValueError(f"template {name!r} is already registered with a different text")
    _TEMPLATES[name] = template
    return template


def available_templates() -> list[str]:
    """Names of the registered templates."""
    return sorted(_TEMPLATES)


def get_template(name: str, think: bool = False) -> Template:
    """The template called ``name`` (``"r1zero+think"`` is the same as ``think=True``).

    >>> get_template("r1zero", think=True).render("What is 2+3?")[-40:]
    '. User: What is 2+3?. Assistant: <think>'
    """
    base, _, suffix = name.partition("+")
    if base not in _TEMPLATES or suffix not in ("", "think"):
        raise ValueError(
            f"unknown template {name!r}; registered: {', '.join(available_templates())} (add '+think')"
        )
    template = _TEMPLATES[base]
    if think or suffix == "think":
        template = replace(template, name=f"{base}+think", think=True)
    return template


# DeepSeek-R1 paper (2025), Table 1: the R1-Zero training template, "prompt" replaced by the question.
register_template(
    "r1zero",
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the "
    "answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> "
    "tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
    "User: {question}. Assistant:",
    description="DeepSeek-R1-Zero (paper Table 1): reasoning in <think>, answer in <answer>",
)
# Qwen2.5-Math chain-of-thought prompt (the "qwen_math" template of Dr. GRPO / understand-r1-zero).
register_template(
    "qwen-math",
    "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
    "<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n",
    description="Qwen2.5-Math chat format, final answer in \\boxed{}",
)
register_template("none", "{question}", description="the raw question, no template")
# The CPU demo's prompt for the built-in tiny-base: the R1-Zero template shortened to fit its context
# (r1zero/assets/tiny-base/README.md). Like the paper's it ends at "Assistant:": using the tags is the model's choice.
TINY_DEMO_HEADER = "Think inside <think> </think>, then answer inside <answer> </answer>."
register_template(
    "tiny-demo",
    TINY_DEMO_HEADER + "\nUser: {question}\nAssistant:",
    description="the CPU demo's short R1-Zero template (tiny-base)",
)
register_template(
    "chat", "{question}", chat=True, description="the tokenizer's chat template (instruct models)"
)
