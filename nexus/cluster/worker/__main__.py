"""``python -m nexus.cluster.worker <worker-id> <kind> <bootstrap-fd> <death-fd>``: how the driver starts a worker."""

from .main import main

if __name__ == "__main__":
    raise SystemExit(main())
