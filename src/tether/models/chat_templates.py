"""Which chat template a checkpoint uses, and one user turn rendered through it.

A checkpoint can keep its template in several homes. transformers reads them in this order, and so does
tether (``HOMES``): the processor takes ``processor_config.json``'s ``chat_template`` key, else
``chat_template.json``, else ``chat_template.jinja``; the tokenizer (what a checkpoint without a processor
template falls back to) takes ``chat_template.jinja``, else ``tokenizer_config.json``. When two homes hold
different templates, the first one wins and a warning names both, because the processor and the tokenizer
of one checkpoint may otherwise format prompts differently without anyone noticing.

A checkpoint without any template is an error naming every home looked at. ``--chat-template`` (the
``chat_template`` argument of ``tether.models.load``) then gives a template file, or by explicit choice one
of the documented prompt formats in ``DOCUMENTED_FORMATS``; tether never picks one silently.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from tether.core.errors import TetherError

logger = logging.getLogger(__name__)

# (file, JSON key or None for a raw Jinja file), in transformers' order of precedence
HOMES = (
    ("processor_config.json", "chat_template"),
    ("chat_template.json", "chat_template"),
    ("chat_template.jinja", None),
    ("tokenizer_config.json", "chat_template"),
)

# The prompt formats the families' authors document, for checkpoints that ship no template. Each is offered
# only by name (``--chat-template llava-1.5``), never applied on its own.
DOCUMENTED_FORMATS = {
    # llava-hf/llava-1.5-*: "USER: <image>\n{prompt} ASSISTANT:"
    "llava-1.5": (
        "{% for message in messages %}"
        "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
        "{% for c in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
        "{% for c in message['content'] | selectattr('type', 'equalto', 'text') %}{{ c['text'] + ' ' }}{% endfor %}"
        "{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
    ),
    # Qwen/Qwen2-VL-*-Instruct and Qwen2.5-VL: ChatML with the default system turn and the vision span
    "qwen2-vl": (
        "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
        "<|im_start|>{{ message['role'] }}\n"
        "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
        "{% else %}{% for c in message['content'] %}"
        "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
        "{% elif 'text' in c %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
}


def template_homes(path) -> list[tuple[str, str]]:
    """``(home, template)`` for every home of ``path`` that holds a template, in order of precedence."""
    found = []
    for name, key in HOMES:
        file = Path(path) / name
        if not file.is_file():
            continue
        if key is None:
            found.append((name, file.read_text(encoding="utf-8")))
            continue
        try:
            template = json.loads(file.read_text(encoding="utf-8")).get(key)
        except json.JSONDecodeError as e:
            raise TetherError(f"{file}: invalid JSON ({e.msg}, line {e.lineno})") from None
        template = _default_template(template)
        if template:
            found.append((f"{name} ({key})", template))
    return found


def _default_template(template) -> str | None:
    """A single template, or the ``default`` one of a named set (a dict, or tokenizer_config's list)."""
    if isinstance(template, list):
        template = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
    if isinstance(template, dict):
        template = template.get("default")
    return template if isinstance(template, str) else None


def resolve_chat_template(path, chosen: str | None = None) -> str:
    """The template ``path``'s checkpoint is used with: ``chosen`` (a file or a documented format's name)
    when given, else the first of ``HOMES`` that has one (warning when a later home holds another)."""
    if chosen:
        return chosen_template(chosen)
    found = template_homes(path)
    if not found:
        looked = ", ".join(f"{name} ({key})" if key else name for name, key in HOMES)
        raise TetherError(
            f"{path}: checkpoint has no chat template; looked in {looked}. Pass --chat-template FILE (a Jinja "
            f"template), or name a documented prompt format: {', '.join(sorted(DOCUMENTED_FORMATS))}"
        )
    (home, template), *others = found
    for other, text in others:
        if text.strip() != template.strip():
            logger.warning(
                "%s: %s and %s hold different chat templates; using %s, as transformers' processor does",
                path,
                home,
                other,
                home,
            )
    return template


def chosen_template(chosen: str) -> str:
    """A template given by the user: a documented format's name, or a file (raw Jinja or a JSON home)."""
    if chosen in DOCUMENTED_FORMATS:
        return DOCUMENTED_FORMATS[chosen]
    file = Path(chosen)
    if not file.is_file():
        raise TetherError(
            f"--chat-template {chosen}: no such file, and not a documented format "
            f"({', '.join(sorted(DOCUMENTED_FORMATS))})"
        )
    text = file.read_text(encoding="utf-8")
    if file.suffix != ".json":
        return text
    try:
        template = _default_template(json.loads(text).get("chat_template"))
    except json.JSONDecodeError as e:
        raise TetherError(f"{file}: invalid JSON ({e.msg}, line {e.lineno})") from None
    if not template:
        raise TetherError(f"{file}: no chat_template key")
    return template


def chat_prompt(
    tokenizer, chat_template: str, question: str, image_text: str | None = None, n_images: int = 1
) -> str:
    """One user turn (an image, or ``n_images`` images, then the question) through ``chat_template``, ending
    where the assistant answers; ``image_text`` None means no image. Shared by the HF adapters and the vLLM
    backend so both see the same prompt.

    Templates written for processors take content as a list of parts; many fine-tune exports take a string
    (and expect the image placeholder inside it). The list shape is tried first; a template that fails on
    it, or prints the list itself, gets the string shape: ``image_text`` per image followed by the question.
    """
    images = [{"type": "image"}] * n_images if image_text is not None else []
    parts = images + [{"type": "text", "text": question}]
    try:
        text = _render(tokenizer, chat_template, parts)
        if question in text and "'type': 'text'" not in text:
            return text
    except TypeError:
        pass  # a template that concatenates or filters content as a string
    return _render(tokenizer, chat_template, (image_text or "") * len(images) + question)


def _render(tokenizer, chat_template: str, content) -> str:
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": content}],
        chat_template=chat_template,
        tokenize=False,
        add_generation_prompt=True,
    )
