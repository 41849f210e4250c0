"""Small components for config tests, registered inside an isolated registry by `register_toys`."""
from typing import Literal, Optional

from vlmkit.registry import ADAPTERS, DATASETS, MODELS, RUNNERS
from vlmkit.schema import Component, Runtime


def register_toys():
    @ADAPTERS.register("toy_proj", aliases=["toy_projector"])
    class ToyProjector:
        """Projects to a width the model supplies."""

        def __init__(self, in_dim: Runtime[int], depth: int = 2, act: Literal["gelu", "relu"] = "gelu"):
            self.in_dim, self.depth, self.act = in_dim, depth, act

    @MODELS.register("toy_model")
    class ToyModel:
        """A model made of one adapter."""

        def __init__(self, hidden: int = 8, dropout: float = 0.0, adapter: Optional[Component("adapters")] = None,
                     frames: int = 4):
            self.hidden, self.dropout, self.frames = hidden, dropout, frames
            self.adapter = ADAPTERS.build(adapter, path="model.adapter", in_dim=hidden) if adapter else None

        def data_contract(self):
            return {"frames": self.frames}

    @DATASETS.register("toy_data")
    class ToyData:
        """A dataset of n items."""

        def __init__(self, contract: Runtime[dict], n: int, split: str = "train"):
            self.contract, self.n, self.split = contract, n, split

    @RUNNERS.register("toy_runner")
    class ToyRunner:
        """Records what it was given."""

        def __init__(self, model: Runtime[object], datasets: Runtime[dict], config: Runtime[dict],
                     lr: float = 1e-3, epochs: int = 1, output_dir: str = "out"):
            self.model, self.datasets, self.config, self.lr, self.epochs = model, datasets, config, lr, epochs
            self.trained = False

        def train(self):
            self.trained = True

    return ToyProjector, ToyModel, ToyData, ToyRunner
