"""``python -m gearq.server``."""

from .cli import main

raise SystemExit(main(prog="python -m gearq.server"))
