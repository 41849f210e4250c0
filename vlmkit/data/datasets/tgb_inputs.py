"""``tgb_inputs``: any video dataset plus the batch entries of VideoTGB's temporal grounding sampler.

Per sample, on top of the wrapped dataset's (it must put ``question`` in its meta, as video_qa and
llava_instruct do):
- ``question_ids``: the question alone, tokenized with the sampler's tokenizer (from the model's contract);
- ``flow``: the precomputed RAFT flow ``flow_dir/<flow_template>`` (published: ``{video}_raft.npy``, shape
  (N, 2, H, W)), thinned to at most ``max_flow_frames`` positions at bin midpoints (64 as published), resized
  to the sampler's flow size and divided by its largest magnitude; left out when the sampler estimates flow
  from the decoded frames itself;
- ``tgb_span``: the pseudo-label [start, end] fractions from ``labels_path`` (``{sample id: [start, end]}``, as
  written by ``python -m vlmkit.tools.tgb_pseudo_labels``), needed while the sampler trains.
The collater pads them into ``question_ids`` / ``question_mask`` (B, Lq), ``flow`` (B, L, 2, S, S) zero-padded
with ``flow_lengths`` (B,), and ``tgb_span`` (B, 2).
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from vlmkit.contracts import DataContract
from vlmkit.data.collate import pad_1d
from vlmkit.data.datasets.video_qa import VIDEO_SUFFIXES
from vlmkit.errors import ConfigError, DataError
from vlmkit.registry import DATASETS
from vlmkit.schema import Component, Runtime, signature_of


def load_flow(path: str, max_positions: int, size: int) -> torch.Tensor:
    """(L <= max_positions, 2, size, size) float flow from an (N, 2, H, W) .npy, normalised by its max magnitude."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: flow file not found (precompute RAFT flow per video, or give the sampler a "
                        f"flow_estimator)")
    try:
        flow = torch.from_numpy(np.load(path).astype(np.float32))
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read the flow array: {err}") from err
    if flow.dim() != 4 or flow.shape[1] != 2 or flow.shape[0] == 0:
        raise DataError(f"{path}: flow must be (N, 2, H, W), got {tuple(flow.shape)}")
    if flow.shape[0] > max_positions:  # midpoints of equal bins, as the published loader thins to 64
        bounds = np.linspace(0, flow.shape[0], max_positions + 1).astype(int)
        flow = flow[torch.from_numpy((bounds[:-1] + bounds[1:] - 1) // 2)]
    if flow.shape[-2:] != (size, size):
        flow = F.interpolate(flow, size=(size, size), mode="bilinear", align_corners=False)
    return flow / (flow.norm(dim=1).max() + 1e-5)


@DATASETS.register("tgb_inputs", aliases=["videotgb_inputs"])
class TGBInputs(Dataset):
    """Wraps ``dataset`` (any dataset config) and adds the sampler's question ids, flow and pseudo-label spans."""

    def __init__(self, dataset: Component("datasets"), flow_dir: Optional[str] = None,
                 flow_template: str = "{video}_raft.npy", labels_path: Optional[str] = None,
                 max_flow_frames: int = 64, *, contract: Runtime[DataContract]):
        needs = (contract.extra or {}).get("selector") if contract is not None else None
        if not needs or "question_tokenizer" not in needs:
            raise ConfigError("datasets.tgb_inputs", "the model has no selector that reads the question; "
                                                     "tgb_inputs serves a temporal_grounding_sampler")
        params = signature_of(DATASETS.get(DATASETS.name_of(dataset, "tgb_inputs.dataset"))).parameters
        self.inner = DATASETS.build(dataset, "tgb_inputs.dataset",
                                    **({"contract": contract} if "contract" in params else {}))
        self.tokenizer, self.max_question = needs["question_tokenizer"], needs["question_max_length"]
        self.read_flow, self.flow_size = needs["flow"], needs["flow_size"]
        self.max_flow_frames = min(max_flow_frames, needs["max_positions"])
        if self.read_flow and not flow_dir:
            raise ConfigError("tgb_inputs.flow_dir", "the sampler reads precomputed flow: set flow_dir (or give "
                                                     "the sampler a flow_estimator)")
        self.flow_dir, self.flow_template = flow_dir, flow_template
        self.labels = self._read_labels(labels_path) if labels_path else None

    @staticmethod
    def _read_labels(path: str) -> dict[str, list[float]]:
        if not os.path.isfile(path):
            raise DataError(f"{path}: pseudo-label file not found (python -m vlmkit.tools.tgb_pseudo_labels)")
        labels = json.loads(Path(path).read_text())
        if not isinstance(labels, dict):
            raise DataError(f"{path}: expected {{sample id: [start, end]}}, got {type(labels).__name__}")
        return {str(k): v for k, v in labels.items()}

    def __len__(self) -> int:
        return len(self.inner)

    def __getattr__(self, name: str) -> Any:  # set_epoch, set_output_dir, bad_samples ... of the wrapped dataset
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __getitem__(self, index: int) -> Optional[dict]:
        sample = self.inner[index]
        if sample is None:
            return None
        meta = sample.get("meta", {})
        if "question" not in meta:
            raise DataError(f"tgb_inputs: sample {sample.get('id')!r} has no 'question' in its meta; wrap a QA "
                            f"or instruction dataset")
        sample["question_ids"] = torch.tensor(self.tokenizer(meta["question"], truncation=True,
                                                             max_length=self.max_question)["input_ids"])
        if self.read_flow:
            video = str(meta.get("video_name") or Path(str(meta.get("media", sample.get("id")))).name)
            if Path(video).suffix.lower() in VIDEO_SUFFIXES:  # annotations that name the file: a.mp4 -> a
                video = Path(video).stem
            path = os.path.join(self.flow_dir, self.flow_template.format(video=video))
            sample["flow"] = load_flow(path, self.max_flow_frames, self.flow_size)
        if self.labels is not None:
            key = str(sample.get("id"))
            if key not in self.labels:
                raise DataError(f"tgb_inputs: no pseudo-label span for sample {key!r}")
            sample["tgb_span"] = torch.tensor([float(v) for v in self.labels[key]][:2])
        return sample

    def collater(self, samples: Sequence[Optional[dict]]) -> Optional[dict]:
        kept = [s for s in samples if s is not None]
        batch = self.inner.collater(kept)
        if batch is None:
            return None
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = [s["question_ids"] for s in kept]
        batch["question_ids"] = pad_1d(ids, pad, "right")
        batch["question_mask"] = pad_1d([torch.ones_like(i) for i in ids], 0, "right")
        if self.read_flow:
            lengths = [s["flow"].shape[0] for s in kept]
            flow = torch.zeros(len(kept), max(lengths), *kept[0]["flow"].shape[1:])
            for row, s in enumerate(kept):
                flow[row, : lengths[row]] = s["flow"]
            batch["flow"], batch["flow_lengths"] = flow, torch.tensor(lengths)
        if self.labels is not None:
            batch["tgb_span"] = torch.stack([s["tgb_span"] for s in kept])
        return batch
