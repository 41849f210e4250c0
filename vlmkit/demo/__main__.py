"""``python -m vlmkit.demo``: the CPU demo (``vlmkit.demo.pipeline``)."""
from vlmkit.openmp_env import quiet_openmp_workers

quiet_openmp_workers()  # before torch loads: the demo trains on 2 threads beside a decoding worker (openmp_env.py)
from vlmkit.demo.pipeline import main  # noqa: E402

raise SystemExit(main())
