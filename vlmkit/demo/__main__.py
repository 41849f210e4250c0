"""``python -m vlmkit.demo``: the CPU demo (``vlmkit.demo.pipeline``)."""
from vlmkit.demo.pipeline import main

raise SystemExit(main())
