"""The CPU demo and the tiny data of tests and examples: scaffolding, not part of the library's layers.

Nothing else in ``vlmkit`` imports this package (tests/core/test_layers.py enforces it); the tests, the benchmarks
and ``python -m vlmkit.demo`` do. What lives here:

    pipeline.py             python -m vlmkit.demo: synthetic videos -> caption pretraining -> instruction tuning -> eval
    synthetic/              python -m vlmkit.demo.synthetic: the shape videos with captions, questions, conversations
    synthetic_video.py      test-pattern videos (moving squares, frame numbers) for the decoding and data tests
    tiny_eval_data.py       python -m vlmkit.demo.tiny_eval_data: the data of eval_configs/tiny/
    tiny_benchmark_data.py  python -m vlmkit.demo.tiny_benchmark_data: VCGBench / MLVU / long-video annotations
    synthetic_tokenizer.py  the ``tokenizer: local:synthetic`` word tokenizer over the generator's vocabulary
    tiny_video_vit.py       the ``tiny_video_vit`` encoder of the demo recipe (configs/models/demo/)

The two components are registered by name and found from YAML: the encoders registry and the local-tokenizer
registry list these modules among their locations (a module path string, not an import).
"""
