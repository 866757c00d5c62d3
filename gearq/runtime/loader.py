"""Find the app a ``gearq worker MODULE[:APP]`` command names.

Like ``celery -A``: the current directory goes first on ``sys.path``, the module is
imported, and the app is the attribute named after the colon (dotted paths allowed), else
the module's ``app`` if it is an :class:`~gearq.tasks.app.App`, else the one App instance
the module holds. The admin commands' ``-A`` uses the same rules.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..tasks.app import App

__all__ = ["AppLoadError", "load_app"]


class AppLoadError(Exception):
    """The module cannot be imported, or holds no (or more than one) app; one line."""


def _put_cwd_on_path() -> None:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def load_app(spec: str) -> tuple[App, str]:
    """Import ``MODULE[:APP]``; return the app and its canonical ``module:attribute``."""
    from ..tasks.app import App

    module_name, _, attribute = spec.strip().partition(":")
    if not module_name:
        raise AppLoadError(f"no module in {spec!r}: give MODULE or MODULE:APP")
    if module_name.endswith(".py") or os.sep in module_name:
        raise AppLoadError(
            f"{module_name!r} looks like a path: give a module name (proj.tasks), and run"
            " from the directory it is importable from"
        )
    _put_cwd_on_path()
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == module_name or module_name.startswith(missing + "."):
            raise AppLoadError(
                f"no module named {module_name!r} (searched {os.getcwd()} and sys.path)"
            ) from None
        raise AppLoadError(f"importing {module_name!r} failed: ModuleNotFoundError: {exc}") from exc
    except Exception as exc:
        raise AppLoadError(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    if attribute:
        try:
            value: object = module
            for part in attribute.split("."):
                value = getattr(value, part)
        except AttributeError:
            raise AppLoadError(f"module {module_name!r} has no attribute {attribute!r}") from None
        if not isinstance(value, App):
            raise AppLoadError(f"{attribute} is a {type(value).__name__}, not a gearq App")
        return value, f"{module_name}:{attribute}"
    default = getattr(module, "app", None)
    if isinstance(default, App):
        return default, f"{module_name}:app"
    found = {name: value for name, value in vars(module).items() if isinstance(value, App)}
    distinct = {id(app): name for name, app in found.items()}
    if not distinct:
        raise AppLoadError(
            f"module {module_name!r} holds no gearq App; define one (app = App(...)) or name"
            " it: MODULE:APP"
        )
    if len(distinct) > 1:
        names = ", ".join(sorted(distinct.values()))
        raise AppLoadError(
            f"module {module_name!r} holds several Apps ({names}): name one,"
            f" e.g. {module_name}:{sorted(distinct.values())[0]}"
        )
    name = next(iter(distinct.values()))
    return found[name], f"{module_name}:{name}"
