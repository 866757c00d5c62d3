"""``python -m gearq``: the same as the ``gearq`` command."""

from .cli import main

raise SystemExit(main())
