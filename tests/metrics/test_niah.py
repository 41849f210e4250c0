import json

import pytest
import torch
from PIL import Image

from vlmkit.errors import DataError
from vlmkit.metrics.niah import accuracy_grid, insert_needle, needle_grid_samples, needle_position
from vlmkit.registry import METRICS


def test_needle_positions_and_insertion():
    assert [needle_position(8, d) for d in (0.0, 0.25, 0.5, 1.0)] == [0, 2, 4, 8]
    combined, start = insert_needle(list(range(8)), [100, 101], 0.5)
    assert combined == [0, 1, 2, 3, 100, 101, 4, 5, 6, 7] and start == 4
    assert insert_needle([0, 1], 9, 1.0) == ([0, 1, 9], 2)
    frames = torch.zeros(6, 3, 4, 4)
    needle = torch.ones(3, 4, 4)
    out, start = insert_needle(frames, needle, 1 / 3)
    assert out.shape == (7, 3, 4, 4) and start == 2
    assert out[2].eq(1).all() and out[[0, 1, 3, 4, 5, 6]].eq(0).all()
    with pytest.raises(DataError, match="do not match"):
        insert_needle(frames, torch.ones(3, 5, 5), 0.5)
    with pytest.raises(DataError, match="depth"):
        needle_position(4, 1.5)
    assert len(needle_grid_samples([4, 8], [0.0, 0.5, 1.0])) == 6


def test_grid_json_and_heatmap(tmp_path):
    # a tiny "model" that only sees needles in the first half of short haystacks
    results = []
    for cell in needle_grid_samples([4, 8], [0.0, 0.5, 1.0]):
        for trial in range(2):
            seen = cell["haystack_frames"] == 4 and cell["needle_depth"] < 1.0 and trial == 0
            results.append({**cell, "correct": seen or (cell["needle_depth"] == 0.0)})
    grid = accuracy_grid(results)
    assert grid["haystack_frames"] == [4, 8] and grid["needle_depth"] == [0.0, 0.5, 1.0]
    assert grid["accuracy"] == [[1.0, 0.5, 0.0], [1.0, 0.0, 0.0]]
    assert grid["count"] == [[2, 2, 2], [2, 2, 2]]

    out = METRICS.build({"name": "niah_grid", "output_dir": str(tmp_path)}).compute(results)
    assert out["accuracy/frames=4/depth=0.5"] == 0.5 and out["accuracy"] == pytest.approx(5 / 12)
    assert json.loads((tmp_path / "niah_grid.json").read_text()) == grid
    with Image.open(tmp_path / "niah_grid.png") as image:
        assert image.size[0] > 100 and image.size[1] > 100
