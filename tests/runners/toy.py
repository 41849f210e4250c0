"""A tiny language model and a generated token dataset for runner tests (no downloads)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, IterableDataset

VOCAB = 17
LENGTH = 6


class ToyLM(torch.nn.Module):
    """embed -> projector -> norm -> dropout -> head; 'frozen' is a frozen branch; 'unused' may be skipped."""

    def __init__(self, width: int = 8, frozen: bool = True):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, width)
        self.projector = torch.nn.Linear(width, width)
        self.norm = torch.nn.LayerNorm(width)
        self.dropout = torch.nn.Dropout(0.1)
        self.head = torch.nn.Linear(width, VOCAB)
        self.frozen = torch.nn.Linear(width, width)
        self.frozen.requires_grad_(not frozen)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
        hidden = self.embed(input_ids)
        hidden = hidden + self.frozen(hidden)
        hidden = self.dropout(self.norm(torch.tanh(self.projector(hidden))))
        logits = self.head(hidden)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = F.cross_entropy(logits.reshape(-1, VOCAB), labels.reshape(-1), ignore_index=-100)
        return out


class ToyTokens(Dataset):
    """Random token sequences; labels mask the first token and, at random (global RNG), one more position."""

    def __init__(self, size: int = 32, seed: int = 0, supervised: bool = True, random_mask: bool = True):
        generator = torch.Generator().manual_seed(seed)
        self.tokens = torch.randint(0, VOCAB, (size, LENGTH), generator=generator)
        self.supervised = supervised
        self.random_mask = random_mask

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, index: int) -> dict:
        ids = self.tokens[index]
        labels = ids.clone()
        labels[0] = -100
        if self.random_mask:  # draws from the global RNG, like an augmentation
            labels[int(torch.randint(1, LENGTH, ()))] = -100
        if not self.supervised:
            labels[:] = -100
        return {"input_ids": ids, "labels": labels}

    def collater(self, samples: list[dict]) -> dict:
        return {k: torch.stack([s[k] for s in samples]) for k in samples[0]}


def make_model(seed: int = 0, **kwargs) -> ToyLM:
    torch.manual_seed(seed)
    return ToyLM(**kwargs)


def run_cfg(**overrides) -> dict:
    cfg = {"name": "trainer", "scheduler": {"name": "linear_warmup_cosine", "init_lr": 1e-2, "min_lr": 1e-3,
                                            "warmup_lr": 1e-3, "warmup_steps": 2},
           "optimizer": {"name": "adamw", "weight_decay": 0.05, "lr_scale": {"projector": 10.0}},
           "loggers": ["jsonl"], "strategy": "single", "batch_size": 4, "log_every": 1, "max_steps": 4}
    if "max_epochs" in overrides:
        del cfg["max_steps"]
    cfg.update(overrides)
    return cfg


class EmptyStream(IterableDataset):
    """A resumable stream with no length (the steps of an epoch are unknown) and no ``consumed`` (its position
    cannot follow DataLoader workers)."""

    def __iter__(self):
        return iter(())

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass
