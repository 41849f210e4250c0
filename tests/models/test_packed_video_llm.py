"""A VideoLLM on packed rows (run.packing): tiny PLLaVA (LLaMA + LoRA, CLIP, pooled visual tokens) with answers of
1-12 words. Every supervised token has the loss it has unpacked, the batch's supervised-token count is unchanged,
and a conversation's logits do not move when another conversation of its row (video or text) changes."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.runners.varying_answers import VaryingAnswers, build_tiny_pllava
from vlmkit.contracts import IGNORE_INDEX
from vlmkit.data.packing import pack_batch
from vlmkit.errors import ConfigError
from vlmkit.tasks.base import supervised_tokens


@pytest.fixture(scope="module")
def model_and_batch(tmp_path_factory):
    model = build_tiny_pllava(tmp_path_factory.mktemp("tiny")).train()
    data = VaryingAnswers(model, size=8)
    batch = data.collater([data[i] for i in range(8)])
    batch["meta"] = [{"id": i} for i in range(8)]
    return model, data, batch


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> dict[tuple[int, int], float]:
    """{(row, position): loss of predicting labels[row, position] from the position before}."""
    losses = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), reduction="none",
                             ignore_index=IGNORE_INDEX).view(labels.shape[0], -1)
    return {(r, t + 1): float(losses[r, t]) for r, t in (labels[:, 1:] != IGNORE_INDEX).nonzero().tolist()}


def spans(plain: dict, packed: dict) -> dict[int, tuple[int, int, int]]:
    """{sample id: (row, start, length)} of each conversation in the packed rows, found by its tokens."""
    mask = plain["attention_mask"].bool()
    tokens = {m["id"]: plain["input_ids"][i][mask[i]] for i, m in enumerate(plain["meta"])}
    out, row, at = {}, 0, 0
    for sample in (m["id"] for m in packed["meta"]):
        n = len(tokens[sample])
        if not torch.equal(packed["input_ids"][row, at:at + n], tokens[sample]):
            row, at = row + 1, 0  # the rest of the row is padding: the sample opens the next row
        assert torch.equal(packed["input_ids"][row, at:at + n], tokens[sample])
        assert packed["position_ids"][row, at:at + n].tolist() == list(range(n))
        out[sample], at = (row, at, n), at + n
    return out


def per_sample(batch: dict, losses: dict[tuple[int, int], float], where: dict[int, tuple[int, int, int]]):
    """Each sample's token losses in order of position."""
    return {sample: [losses[(row, t)] for t in range(start, start + n) if (row, t) in losses]
            for sample, (row, start, n) in where.items()}


def test_packed_and_unpacked_rows_give_every_token_the_same_loss(model_and_batch):
    model, _, batch = model_and_batch
    packed = pack_batch(batch, max_length=96, pad_token_id=0)
    assert packed["input_ids"].shape[0] < batch["input_ids"].shape[0]  # several conversations share rows
    assert int(packed["position_ids"].eq(0).sum()) > packed["input_ids"].shape[0]
    with torch.no_grad():
        plain = model(**{k: v for k, v in batch.items() if k != "meta"})
        together = model(**{k: v for k, v in packed.items() if k != "meta"})
    expected = per_sample(batch, token_losses(plain.logits, batch["labels"]),
                          {m["id"]: (i, 0, int(batch["attention_mask"][i].sum())) for i, m in enumerate(batch["meta"])})
    got = per_sample(packed, token_losses(together.logits, packed["labels"]), spans(batch, packed))
    assert sorted(got) == sorted(expected) == list(range(8)) and all(expected.values())
    for sample, losses in expected.items():
        assert got[sample] == pytest.approx(losses, abs=1e-5), sample
    assert supervised_tokens(packed["labels"], False) == supervised_tokens(batch["labels"], False)
    assert float(together.loss) == pytest.approx(float(plain.loss), abs=1e-5)


def test_changing_one_conversation_leaves_the_others_in_its_row_bit_identical(model_and_batch):
    model, data, _ = model_and_batch
    batch = data.collater([data[0], data[1]])
    batch["meta"] = [{"id": 0}, {"id": 1}]
    changed = {**batch, "input_ids": batch["input_ids"].clone(), "pixel_values": [batch["pixel_values"][0].clone()]}
    changed["pixel_values"][0][0] = torch.rand_like(changed["pixel_values"][0][0])  # sample 0's video
    answer = batch["labels"][0] != IGNORE_INDEX
    changed["input_ids"][0, answer] = changed["input_ids"][0, answer].flip(0)  # and its answer
    assert not torch.equal(changed["input_ids"], batch["input_ids"])
    packs = [pack_batch(b, max_length=200, pad_token_id=0) for b in (batch, changed)]
    with torch.no_grad():
        logits = [model(**{k: v for k, v in p.items() if k != "meta"}).logits for p in packs]
    where = spans(batch, packs[0])
    assert packs[0]["input_ids"].shape[0] == 1 and {row for row, _, _ in where.values()} == {0}
    (_, start_0, n_0), (_, start_1, n_1) = where[0], where[1]
    assert torch.equal(logits[0][0, start_1:start_1 + n_1], logits[1][0, start_1:start_1 + n_1])
    assert not torch.equal(logits[0][0, start_0:start_0 + n_0], logits[1][0, start_0:start_0 + n_0])


def test_packing_is_refused_by_backbones_that_cannot_honour_it(tmp_path):
    from vlmkit.assemble import build_model
    from vlmkit.config import load_config
    from vlmkit.registry import RUNNERS

    for preset, needle in (("videotgb/tiny_t5", "encoder-decoder"), ("video_xl/tiny", "Video-XL")):
        path = tmp_path / f"{preset.replace('/', '_')}.yaml"
        path.write_text(f"model: {{preset: {preset}}}\n")
        torch.manual_seed(0)
        model = build_model(load_config(path, []))
        with pytest.raises(ConfigError) as err:
            RUNNERS.build({"name": "trainer", "strategy": "single", "max_steps": 1, "loggers": [],
                           "scheduler": {"name": "constant", "init_lr": 1e-3}, "packing": {"max_length": 512}},
                          model=model, datasets={"train": VaryingAnswersLike(model)}, output_dir=str(tmp_path / "o"))
        message = str(err.value)
        assert message.startswith("run.packing") and needle in message and "causal_lm" in message, message


class VaryingAnswersLike(torch.utils.data.Dataset):
    """Four samples are enough for a trainer to be built (it refuses packing before reading any)."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int):
        raise AssertionError("the trainer must refuse packing before reading data")

    def __init__(self, model):
        self.model = model
