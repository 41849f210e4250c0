"""Registers the toy video dataset, for configs that bring it in with `imports: [tests.toy_video_plugin]`."""
from tests.toy_video_data import ToyColourVideos
from vlmkit.registry import DATASETS

DATASETS.add("toy_colour_videos", ToyColourVideos)
