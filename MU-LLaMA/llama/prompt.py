"""Prompt templates and answer extraction.

"upstream" is byte for byte what the released MU-LLaMA was trained and evaluated on, including
the Python builtin's repr that the original code put in the Input field by accident; checkpoints
from the original code must use it. "alpaca" is the clean Alpaca no-input template.
"""

TEMPLATES = {
    "upstream": (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n{instruction}\n\n### Input:\n<built-in function input>\n\n### Response:"
    ),
    "alpaca": (
        "Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n{instruction}\n\n### Response:"
    ),
}


def format_prompt(instruction: str, template: str = "upstream") -> str:
    if template not in TEMPLATES:
        raise ValueError(f"unknown prompt template {template!r}; known: {sorted(TEMPLATES)}")
    return TEMPLATES[template].format(instruction=instruction)


def extract_answer(text: str) -> str:
    """The answer part of a generated continuation: up to a new '###' section, stripped."""
    return text.split("\n###")[0].strip()
