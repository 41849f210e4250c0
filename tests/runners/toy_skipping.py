"""Token datasets whose chosen samples are bad (skipped), with the optional dataset hooks, for runner tests."""
from __future__ import annotations

from tests.runners.toy import ToyTokens
from vlmkit.data.datasets.base import BadSampleLog


class SkippingTokens(ToyTokens):
    """ToyTokens where the samples at ``bad`` are skipped (None, recorded as bad samples) like
    ``on_bad_sample: skip``; the collater drops them and returns None for a batch with none left."""

    def __init__(self, size: int = 16, bad: tuple[int, ...] = (), copy: dict[int, int] | None = None):
        super().__init__(size, random_mask=False)
        for target, source in (copy or {}).items():  # make sample `target` equal to sample `source`
            self.tokens[target] = self.tokens[source]
        self.bad = set(bad)
        self.bad_log = BadSampleLog("skipping_tokens")
        self.epochs: list[int] = []
        self.output_dirs: list[str] = []
        self.written = 0

    def __getitem__(self, index: int):
        self.bad_log.note_read()
        if index in self.bad:
            self.bad_log.record(index, str(index), None, "chosen to be bad", "skipped")
            return None
        return super().__getitem__(index)

    def collater(self, samples):
        kept = [s for s in samples if s is not None]
        return super().collater(kept) if kept else None

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def set_output_dir(self, path: str) -> None:
        self.output_dirs.append(path)
        self.bad_log.output_dir = path

    def bad_samples(self) -> list[dict]:
        return self.bad_log.entries()

    def write_bad_samples(self, output_dir=None):
        self.written += 1
        return self.bad_log.write_summary(output_dir)

    def reset_bad_samples(self) -> None:
        self.bad_log.reset()

    def set_max_bad_fraction(self, fraction) -> None:
        self.bad_log.limit(fraction, min(50, len(self)))

    def check_bad_share(self) -> None:
        self.bad_log.check_share(total=len(self))
