"""A tasks module whose own import fails (for the ``gearq worker`` error tests)."""

import a_dependency_that_is_not_installed  # type: ignore[import-not-found]  # noqa: F401
