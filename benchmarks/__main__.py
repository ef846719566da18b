"""``python -m benchmarks [--only NAME] [--quick] [--json]``; see :mod:`benchmarks.runner`."""

from .runner import main

raise SystemExit(main())
