"""Turn probe text into token ids the way the model will see it.

The chat template is applied when the tokenizer has one (the answer then starts the assistant
turn); otherwise a plain template such as "Question: {prompt} Answer:" is used and answers get
a leading space. Answers are tokenised in context, so a tokenizer that folds the leading space
into the word (" owl") is scored on the ids it would really produce.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jinja2.exceptions import TemplateError


@dataclass(frozen=True)
class Formatter:
    tokenizer: Any
    plain_template: str
    system: str | None = None

    @property
    def uses_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def prompt_text(self, prompt: str, *, system: str | None = None) -> str:
        """The full model input before the answer, with the suite's (or the given) system text."""
        system = system if system is not None else self.system
        if self.uses_chat_template:
            return self._chat_text(prompt, system)
        text = self.plain_template.format(prompt=prompt)
        return f"{system} {text}" if system else text

    def _chat_text(self, prompt: str, system: str | None) -> str:
        messages = [{"role": "user", "content": prompt}]
        if system:
            try:
                return self.tokenizer.apply_chat_template(
                    [{"role": "system", "content": system}, *messages],
                    add_generation_prompt=True,
                    tokenize=False,
                )
            except TemplateError:  # templates without a system role (Gemma, Mistral) raise; fold it into the turn
                messages = [{"role": "user", "content": f"{system}\n\n{prompt}"}]
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def encode_prompt(self, text: str) -> list[int]:
        # A chat template writes its own special tokens; plain text gets the tokenizer's usual ones (BOS).
        return list(self.tokenizer(text, add_special_tokens=not self.uses_chat_template)["input_ids"])

    def answer_text(self, prompt_text: str, answer: str) -> str:
        return answer if self.uses_chat_template or prompt_text[-1:].isspace() else f" {answer}"

    def encode_answer(self, prompt_text: str, prompt_ids: list[int], answer: str) -> list[int]:
        """Ids of `answer` as they follow `prompt_text`; falls back to encoding it alone on a merge."""
        spoken = self.answer_text(prompt_text, answer)
        joint = self.encode_prompt(prompt_text + spoken)
        if joint[: len(prompt_ids)] == prompt_ids and len(joint) > len(prompt_ids):
            return joint[len(prompt_ids) :]
        return list(self.tokenizer(spoken, add_special_tokens=False)["input_ids"])
