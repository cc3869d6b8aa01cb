"""YAML for the registry: safe, with duplicate keys rejected and errors that keep line and column.

PyYAML's ``safe_load`` keeps the last of two equal keys, so a registry entry pasted twice with
different arguments silently runs the second; and its error text spans several lines, the first of
which has no position. Both are bad input that must name the exact spot.
"""

from __future__ import annotations

from typing import Any

import yaml

#: libyaml's parser when PyYAML was built with it: the pure-Python one took about half of `harness list`'s
#: time reading the 13 registry files (benchmarks/bench_cli_startup.py)
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_SafeLoader):  # type: ignore[misc,valid-type]
    """SafeLoader that refuses a mapping with the same key twice."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:  # the keys written here; ``<<`` merges may be overridden (YAML spec)
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
        if key in seen:
            first = seen[key].start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {first.line + 1}, column {first.column + 1})",
                key_node.start_mark)
        seen[key] = key_node
    loader.flatten_mapping(node)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


class YAMLProblem(ValueError):
    """One line: ``line L, column C: what``."""


def load(text: str) -> Any:
    """Parse ``text``; a syntax error or duplicate key raises :class:`YAMLProblem` with its position."""
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = " ".join(p for p in (exc.context, exc.problem) if p) or str(exc).splitlines()[0]
        raise YAMLProblem(f"{where}{what}") from exc
    except yaml.YAMLError as exc:
        raise YAMLProblem(str(exc).splitlines()[0]) from exc
