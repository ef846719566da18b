"""The public surface: a thin face with a sorted __all__, every name exported once."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import nexus
import nexus.core
import nexus.testing


def _check_all(module: object) -> None:
    names = module.__all__  # type: ignore[attr-defined]
    assert names == sorted(names), f"{module.__name__}.__all__ is not sorted"  # type: ignore[attr-defined]
    assert len(names) == len(set(names)), f"{module.__name__}.__all__ repeats a name"  # type: ignore[attr-defined]
    for name in names:
        assert hasattr(module, name), f"{module.__name__} exports {name!r} but does not define it"  # type: ignore[attr-defined]


def test_all_lists_are_sorted_unique_and_resolve() -> None:
    for module in (nexus, nexus.core, nexus.testing):
        _check_all(module)


def test_everyday_api_fits_on_one_screen() -> None:
    assert len(nexus.__all__) <= 40


def test_class_names_are_unique_across_the_package() -> None:
    seen: dict[str, str] = {}
    clashes = []
    for info in pkgutil.walk_packages(nexus.__path__, "nexus."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and obj.__module__ == module.__name__:
                if name in seen and seen[name] != module.__name__:
                    clashes.append(f"{name}: {seen[name]} and {module.__name__}")
                seen.setdefault(name, module.__name__)
    assert clashes == []


def test_one_exception_hierarchy() -> None:
    from nexus.core import errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, nexus.NexusError), f"{name} is outside the hierarchy"
    assert issubclass(errors.AskTimeoutError, TimeoutError)
    assert issubclass(errors.NameTakenError, ValueError)
