"""How batches reach the device: pinned memory and prefetch decided from the device and the workers, non-blocking
copies to CUDA only, and a prefetching feed that gives every batch, in order, exactly as the loader made it.

No GPU here: CUDA's side stream is replaced by a copier that clones on the CPU and logs what it was asked to do
(what a real CUDA stream does with the copies is checked only on a GPU; see docs/performance.md)."""
from __future__ import annotations

import pytest
import torch

from tests.runners.toy import ToyLM, ToyTokens, run_cfg
from vlmkit.registry import RUNNERS
from vlmkit.runners import batches as batches_module
from vlmkit.runners import train_data as train_data_module
from vlmkit.runners.batches import DeviceFeed, feed_settings, move_to
from vlmkit.runners.distributed import DistEnv
from vlmkit.runners.runner import Trainer
from vlmkit.runners.train_data import TrainData

CUDA, CPU = torch.device("cuda"), torch.device("cpu")


class LoggingCopier:
    """Stands in for SideStreamCopier: 'copies' by cloning, and logs each copy and each wait."""

    def __init__(self, device=CPU):
        self.log: list[tuple] = []
        self.copied: set[int] = set()  # ids of the copies handed out: the model must compute on them

    def copy(self, batch):
        self.log.append(("copy", int(batch["n"])))
        moved = {k: v.clone() for k, v in batch.items()}
        self.copied.update(id(v) for v in moved.values())
        return moved, f"event {int(batch['n'])}"

    def ready(self, moved, done):
        self.log.append(("wait", int(moved["n"])))
        assert done == f"event {int(moved['n'])}"  # the compute side waits for this batch's own copy
        return moved


def numbered(count: int) -> list:
    return [{"n": torch.tensor(i), "x": torch.randn(2, 3)} for i in range(count)]


@pytest.mark.parametrize("device, workers, pinned, prefetched", [
    (CPU, 0, False, False), (CPU, 4, False, False), (CUDA, 0, True, False), (CUDA, 2, True, True)])
def test_pinned_memory_on_cuda_and_prefetch_only_with_workers(device, workers, pinned, prefetched):
    assert feed_settings(device, workers) == {"pin_memory": pinned, "prefetch": prefetched}


def test_copies_to_cuda_are_non_blocking_and_to_the_host_blocking(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.Tensor, "to", lambda self, device, non_blocking=False: calls.append(
        (torch.device(device).type, non_blocking)) or self)
    batch = {"a": torch.zeros(1), "nested": [torch.zeros(1), (torch.zeros(1),)], "meta": [{"id": "x"}]}
    moved = move_to(batch, CUDA)
    assert calls == [("cuda", True)] * 3 and moved["meta"] == [{"id": "x"}]
    calls.clear()
    move_to(batch, CPU)
    assert calls == [("cpu", False)] * 3


def test_prefetching_feed_gives_every_batch_in_order_and_copies_one_ahead():
    source, copier = numbered(4), LoggingCopier()
    feed = DeviceFeed(iter(source), CUDA, prefetch=True, copier=copier)
    taken = []
    for host in feed:
        taken.append((host, feed.take()))
        feed.fetch_ahead()  # as the loop does once the step's compute is queued
        assert copier.log[-1] == ("copy", int(host["n"]) + 1) or int(host["n"]) == 3
    assert [h for h, _ in taken] == source  # the host batches themselves, in order
    for host, moved in taken:
        assert moved is not host and all(torch.equal(moved[k], host[k]) for k in host)
    # batch i+1's copy was queued before batch i was used: copy 0, wait 0, copy 1, wait 1, ...
    assert copier.log == [("copy", 0), ("wait", 0), ("copy", 1), ("wait", 1), ("copy", 2), ("wait", 2),
                          ("copy", 3), ("wait", 3)]
    with pytest.raises(StopIteration):
        next(feed)


def test_prefetching_feed_keeps_none_batches_and_accumulated_micro_batches_in_order():
    source = [numbered(1)[0], None, *numbered(3)[1:]]
    feed = DeviceFeed(iter(source), CUDA, prefetch=True, copier=LoggingCopier())
    drawn = [next(feed), next(feed)]  # two micro-batches of one step, then both taken
    moved = [feed.take(), feed.take()]
    assert drawn == source[:2] and moved[1] is None and torch.equal(moved[0]["x"], source[0]["x"])
    feed.fetch_ahead()
    rest = [(host, feed.take()) for host in feed]
    assert [h for h, _ in rest] == source[2:] and all(torch.equal(m["x"], h["x"]) for h, m in rest)


def test_a_loader_error_met_while_prefetching_is_raised_by_next():
    def failing():
        yield numbered(1)[0]
        raise ValueError("bad video")

    feed = DeviceFeed(failing(), CUDA, prefetch=True, copier=LoggingCopier())
    next(feed)
    feed.fetch_ahead()  # meets the error: kept for next(), where the loop expects the data's errors
    feed.take()
    with pytest.raises(ValueError, match="bad video"):
        next(feed)


def test_without_prefetch_the_feed_draws_nothing_ahead_and_moves_on_take():
    drawn = []

    def source():
        for batch in numbered(3):
            drawn.append(int(batch["n"]))
            yield batch

    feed = DeviceFeed(source(), CPU, prefetch=False)
    host = next(feed)
    feed.fetch_ahead()
    assert drawn == [0] and feed.take() == host  # move_to to the CPU: the same tensors


@pytest.mark.parametrize("device, workers, pinned, prefetched", [(CPU, 2, False, False), (CUDA, 0, True, False),
                                                                 (CUDA, 2, True, True)])
def test_training_data_feeds_the_device_it_is_given(device, workers, pinned, prefetched):
    data = TrainData(ToyTokens(8), DistEnv(rank=0, world_size=1, local_rank=0), batch_size=2, grad_accum_steps=1,
                     shuffle=False, seed=0, num_workers=workers, pin_memory=False)
    data.feed_to(device)
    assert (data.pin_memory, data.prefetch) == (pinned, prefetched)


def train(tmp_path, prefetch: bool, monkeypatch) -> tuple[dict, list[float], list]:
    """A toy run whose batches go through a prefetching feed (forced on the CPU, with the logging copier)."""
    copier = LoggingCopier()
    if prefetch:
        monkeypatch.setattr(train_data_module, "feed_settings",
                            lambda device, workers: {"pin_memory": False, "prefetch": True})
        monkeypatch.setattr(batches_module, "SideStreamCopier", lambda device: copier)
    agree = Trainer._agree  # where the step's loss reaches the host (the step's device sync)
    monkeypatch.setattr(Trainer, "_agree", lambda self, *a: copier.log.append(("sync",)) or agree(self, *a))

    class Numbered(ToyTokens):
        def __getitem__(self, index):
            return {**super().__getitem__(index), "n": torch.tensor(index)}

        def collater(self, samples):
            batch = super().collater(samples)
            batch["n"] = batch.pop("n")[0]  # the batch's first index: what LoggingCopier logs
            return batch

    class Model(ToyLM):
        def forward(self, input_ids, labels=None, n=None):
            copier.log.append(("forward", int(n), id(input_ids) in copier.copied))
            return super().forward(input_ids, labels)

    torch.manual_seed(0)
    model = Model()
    model.dropout.p = 0.0
    runner = RUNNERS.build(run_cfg(batch_size=2, grad_accum_steps=2, max_steps=3, shuffle=False, num_workers=0),
                           model=model, datasets={"train": Numbered(16, random_mask=False)},
                           output_dir=str(tmp_path))
    summary = runner.train()
    monkeypatch.undo()
    return {k: v.detach().clone() for k, v in model.named_parameters()}, summary["losses"], copier.log


def test_training_with_prefetch_sees_the_same_batches_and_learns_the_same_weights(tmp_path, monkeypatch):
    weights, losses, _ = train(tmp_path / "plain", False, monkeypatch)
    prefetched, prefetched_losses, log = train(tmp_path / "prefetch", True, monkeypatch)
    assert prefetched_losses == losses
    assert all(torch.equal(prefetched[k], weights[k]) for k in weights)
    # a step draws its two micro-batches (the first one copied ahead by the step before), waits for their copies,
    # queues its forwards on them, then starts copying the next step's first micro-batch before the loss reaches
    # the host
    step = [("copy", 0), ("copy", 2), ("wait", 0), ("wait", 2), ("forward", 0, True), ("forward", 2, True),
            ("copy", 4), ("sync",), ("copy", 6), ("wait", 4), ("wait", 6), ("forward", 4, True),
            ("forward", 6, True), ("copy", 8), ("sync",)]
    assert log[:len(step)] == step


def clone_all(batch):
    if isinstance(batch, torch.Tensor):
        return batch.clone()
    if isinstance(batch, dict):
        return {k: clone_all(v) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(clone_all(v) for v in batch)
    return batch


def test_evaluation_with_prefetch_predicts_the_same_from_the_copies(tmp_path, monkeypatch):
    from tests.runners.test_evaluator import evaluator, predictions
    from tests.tasks.tiny import TinyVideoQA, mc_records, tiny_model
    from vlmkit.runners import evaluator as evaluator_module
    from vlmkit.tasks.multiple_choice import MultipleChoiceTask

    model, cfg = tiny_model(tmp_path)
    data = {"mc": TinyVideoQA(model.data_contract(), mc_records(5))}
    evaluator(model, cfg, data, tmp_path / "plain", batch_size=2, num_workers=0).evaluate()

    copied, used = set(), []

    class CloningCopier:
        def copy(self, batch):
            moved = clone_all(batch)
            copied.update(id(t) for t in batches_module.tensors_in(moved))
            return moved, None

        def ready(self, moved, done):
            return moved

    valid_step = MultipleChoiceTask.valid_step
    monkeypatch.setattr(MultipleChoiceTask, "valid_step", lambda self, model, batch: used.append(
        id(batch["input_ids"]) in copied) or valid_step(self, model, batch))
    monkeypatch.setattr(evaluator_module, "feed_settings",
                        lambda device, workers: {"pin_memory": False, "prefetch": True})
    monkeypatch.setattr(batches_module, "SideStreamCopier", lambda device: CloningCopier())
    evaluator(model, cfg, data, tmp_path / "prefetch", batch_size=2, num_workers=0).evaluate()
    assert used == [True] * 3  # every batch (2 + 2 + 1 rows) computed from its prefetched copy
    plain, prefetched = predictions(tmp_path / "plain"), predictions(tmp_path / "prefetch")
    assert [(r["id"], r["prediction"]) for r in prefetched] == [(r["id"], r["prediction"]) for r in plain]


def test_a_resumed_batch_computes_only_its_unfinished_rows_on_the_device(tmp_path):
    """Ids known only after loading: a batch half predicted before is cut to its new rows on the device copy too."""
    from tests.runners.test_evaluator import evaluator, predictions
    from tests.tasks.tiny import CountingGenerate, TinyVideoQA, mc_records, tiny_model

    model, cfg = tiny_model(tmp_path)
    data = {"mc": TinyVideoQA(model.data_contract(), mc_records(6))}
    first = evaluator(model, cfg, data, tmp_path / "run", batch_size=2)
    original, calls = first.tasks["mc"].valid_step, []

    def crash_on_third(model, batch):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("simulated crash")
        return original(model, batch)

    first.tasks["mc"].valid_step = crash_on_third
    with pytest.raises(RuntimeError, match="simulated crash"):
        first.evaluate()
    counter = CountingGenerate(model)
    evaluator(model, cfg, data, tmp_path / "run", batch_size=3).evaluate()  # batches q0-q2 (done), q3-q5
    assert counter.rows == 2  # q4 and q5 of the second batch, not q3
    evaluator(model, cfg, data, tmp_path / "fresh", batch_size=3).evaluate()
    assert predictions(tmp_path / "run") == predictions(tmp_path / "fresh")
