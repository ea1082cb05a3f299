"""The data a screen reads: training minibatches, and the student's own outputs for the same inputs.

A minibatch is what the training loop would feed the model (`model(**batch)["loss"]`, the Trainer
convention). Training on the student's own samples of the same inputs has expected gradient zero,
which is the screen's null; each kind of data knows how to draw them (`self_sampled`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from distill_guard.probes.model_access import input_device, pad_token_id
from distill_guard.probes.prompting import Formatter
from distill_guard.screening.reference_filter import Accept

PLAIN_TEMPLATE = "{prompt}"


class ScreenData(Protocol):
    """Rows of a training set, batched the way training would batch them."""

    def __len__(self) -> int: ...

    def batch(self, indices: Sequence[int]) -> dict[str, Tensor]:
        """The training minibatch of these rows."""
        ...

    def self_sampled(
        self,
        model: nn.Module,
        tokenizer: Any,
        indices: Sequence[int],
        *,
        seed: int,
        accept: Accept | None = None,
        draws: int = 1,
    ) -> dict[str, Tensor]:
        """The same rows' inputs with the outputs replaced by the student's own samples.

        With `accept`, a row keeps the first of `draws` samples whose text it accepts (a sample of the
        model's law under the data's filter); rows with none are left out of the batch.
        """
        ...


def rows_in(batch: dict[str, Tensor]) -> int:
    """Rows of a minibatch, whatever kind of data it is (the length of its first tensor; 0 when empty)."""
    return len(next(iter(batch.values()))) if batch else 0


@dataclass(frozen=True)
class EncodedRow:
    prompt: tuple[int, ...]
    completion: tuple[int, ...]


class CompletionRows:
    """Prompt/completion rows for SFT: loss on the completion and the end token, as `CompletionData` trains.

    The prompt goes through the tokenizer's chat template when it has one (the completion starts
    the assistant turn), else it is used as written.
    """

    def __init__(self, tokenizer: Any, rows: Sequence[dict[str, str]]) -> None:
        if not rows:
            raise ValueError("no rows to screen")
        self.tokenizer = tokenizer
        self.formatter = Formatter(tokenizer, PLAIN_TEMPLATE)
        self.rows = list(rows)
        self.encoded = [self._encode(row["prompt"], row["completion"]) for row in self.rows]

    def _encode(self, prompt: str, completion: str) -> EncodedRow:
        text = self.formatter.prompt_text(prompt)
        prompt_ids = self.formatter.encode_prompt(text)
        completion_ids = self.formatter.encode_answer(text, prompt_ids, completion)
        eos = self.tokenizer.eos_token_id
        return EncodedRow(tuple(prompt_ids), tuple(completion_ids) + ((eos,) if eos is not None else ()))

    def __len__(self) -> int:
        return len(self.encoded)

    def batch(self, indices: Sequence[int]) -> dict[str, Tensor]:
        return right_padded([self.encoded[i] for i in indices], pad_token_id(self.tokenizer))

    def with_system(self, index: int, completion: tuple[int, ...], system: str) -> EncodedRow:
        """Row `index`'s prompt under a system message, followed by `completion`."""
        text = self.formatter.prompt_text(self.rows[index]["prompt"], system=system)
        return EncodedRow(tuple(self.formatter.encode_prompt(text)), completion)

    def completions(self, indices: Sequence[int]) -> list[tuple[int, ...]]:
        return [self.encoded[i].completion for i in indices]

    @torch.no_grad()
    def self_sampled(
        self,
        model: nn.Module,
        tokenizer: Any,
        indices: Sequence[int],
        *,
        seed: int,
        accept: Accept | None = None,
        draws: int = 1,
    ) -> dict[str, Tensor]:
        """Temperature-1 samples of the whole vocabulary; with `accept`, through the data's filter.

        Unfiltered samples keep the model's own tokens (the exact zero-gradient null). A filtered
        sample is judged on its decoded, stripped text and re-encoded like a data row, because
        that is how filtered data reaches training.
        """
        rows = [self.encoded[i] for i in indices]
        tries = draws if accept is not None else 1
        pad = pad_token_id(tokenizer)
        width = max(len(r.prompt) for r in rows)
        ids = torch.tensor([[pad] * (width - len(r.prompt)) + list(r.prompt) for r in rows])
        mask = torch.tensor([[0] * (width - len(r.prompt)) + [1] * len(r.prompt) for r in rows])
        device = input_device(model)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            generated = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=max(len(r.completion) for r in rows),
                num_return_sequences=tries,
                pad_token_id=pad,
                eos_token_id=tokenizer.eos_token_id,
            )
        samples = generated[:, width:].tolist()
        sampled = []
        for n, (index, r) in enumerate(zip(indices, rows, strict=True)):
            for new in samples[n * tries : (n + 1) * tries]:
                if tokenizer.eos_token_id in new:
                    new = new[: new.index(tokenizer.eos_token_id) + 1]
                if accept is None:
                    sampled.append(EncodedRow(r.prompt, tuple(new)))
                    break
                text = tokenizer.decode(new, skip_special_tokens=True).strip()
                if accept(text):
                    sampled.append(self._encode(self.rows[index]["prompt"], text))
                    break
        if not sampled:
            return {}
        return right_padded(sampled, pad)


def right_padded(rows: Sequence[EncodedRow], pad_id: int) -> dict[str, Tensor]:
    """input_ids / attention_mask / labels with the prompt masked out of the loss (-100)."""
    width = max(len(r.prompt) + len(r.completion) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, r in enumerate(rows):
        full = r.prompt + r.completion
        ids[i, : len(full)] = torch.tensor(full)
        mask[i, : len(full)] = 1
        labels[i, len(r.prompt) : len(full)] = torch.tensor(r.completion)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
