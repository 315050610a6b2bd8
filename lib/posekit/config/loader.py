"""Merge experiment yaml files (with ``_BASE_`` inheritance) and command-line ``KEY VALUE`` pairs.

Every rejection names the source (file or command line), the key and what was expected, because a
typo in a 140-epoch experiment file should fail in the first second, not after the first epoch.
"""
import ast
import difflib
import os
from typing import Any, Iterable, List, Optional, Sequence

import yaml
from yacs.config import CfgNode as CN

from ..utils.errors import ConfigError
from .family import detect_family, get_cfg

BASE_KEY = "_BASE_"
COMMAND_LINE = "command line"


def load_cfg(path: Optional[str] = None, opts: Sequence[str] = (), freeze: bool = True) -> CN:
    """The defaults of the file's family merged with the yaml file at ``path``, then ``opts`` (KEY VALUE ...).

    The family (hence the tree keys are validated against) is chosen by ``posekit.config.family``'s rule.
    """
    chain = _read_with_bases(path, seen=()) if path else []
    merged: dict = {}
    for _, mapping in chain:
        _deep_update(merged, mapping)
    family = detect_family(merged, _explicit_family(merged, opts))
    cfg = get_cfg(family.name)
    for source, mapping in chain:
        _merge_mapping(cfg, mapping, source, prefix="", root=cfg)
    merge_opts(cfg, opts)
    if cfg.FAMILY != family.name:
        raise ConfigError(f"FAMILY: the file is a '{family.name}' config; FAMILY cannot be changed to "
                          f"'{cfg.FAMILY}' on the command line alone")
    family.finalize(cfg, merged)
    if freeze:
        cfg.freeze()
    return cfg


def merge_yaml(cfg: CN, path: str) -> None:
    """Merge one yaml file (after its ``_BASE_`` chain) into ``cfg`` in place."""
    for source, mapping in _read_with_bases(path, seen=()):
        _merge_mapping(cfg, mapping, source, prefix="", root=cfg)


def _explicit_family(merged: dict, opts: Sequence[str]) -> Optional[str]:
    """A FAMILY named on the command line, else in the file chain, else None."""
    pairs = dict(zip(list(opts)[0::2], list(opts)[1::2]))
    return pairs.get("FAMILY") or merged.get("FAMILY") or None


def _deep_update(target: dict, mapping: dict) -> None:
    for key, value in mapping.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = value


def merge_opts(cfg: CN, opts: Sequence[str]) -> None:
    """Merge a flat ``[KEY, VALUE, KEY, VALUE, ...]`` list from the command line into ``cfg``."""
    opts = list(opts)
    if len(opts) % 2:
        raise ConfigError(
            f"{COMMAND_LINE}: overrides come in KEY VALUE pairs, got an odd count ({len(opts)}): "
            f"'{opts[-1]}' has no value")
    for key, raw in zip(opts[0::2], opts[1::2]):
        node, leaf = _walk_to_parent(cfg, key, COMMAND_LINE)
        value = _parse_literal(raw)
        if leaf not in node:
            if not node.is_new_allowed():
                raise _unknown_key(key, COMMAND_LINE, cfg)
            node[leaf] = value
            continue
        node[leaf] = _coerce(node[leaf], value, raw, key, COMMAND_LINE)


def _read_with_bases(path: str, seen: tuple) -> List[tuple]:
    """Return [(source, mapping)] for ``path`` and its ``_BASE_`` ancestors, base first."""
    real = os.path.realpath(path)
    if real in seen:
        chain = " -> ".join(list(seen) + [real])
        raise ConfigError(f"{path}: _BASE_ inheritance loops back on itself ({chain})")
    mapping = _read_yaml(path)
    base = mapping.pop(BASE_KEY, None)
    chain = []
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{path}: {BASE_KEY} must be a relative file path string, got {base!r}")
        base_path = os.path.join(os.path.dirname(path), base)
        chain = _read_with_bases(base_path, seen + (real,))
    return chain + [(path, mapping)]


def _read_yaml(path: str) -> dict:
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path, encoding="utf-8") as handle:
            mapping = yaml.safe_load(handle)
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"{path}: malformed yaml{line}: {getattr(err, 'problem', err)}") from None
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level, "
                          f"got {type(mapping).__name__}")
    return mapping


def _merge_mapping(node: CN, mapping: dict, source: str, prefix: str, root: CN) -> None:
    for key, value in mapping.items():
        full = prefix + str(key)
        if key not in node:
            if not node.is_new_allowed():
                raise _unknown_key(full, source, root)
            node[key] = CN(value, new_allowed=True) if isinstance(value, dict) else value
            continue
        current = node[key]
        if isinstance(current, CN):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: config key {full} is a section; expected a mapping "
                                  f"of its keys, got {value!r}")
            _merge_mapping(current, value, source, full + ".", root)
        else:
            # yacs reads yaml strings as Python literals too, so `GPUS: (0,1,2,3)` is a tuple.
            raw = value if isinstance(value, str) else None
            parsed = _parse_literal(value) if raw is not None else value
            node[key] = _coerce(current, parsed, raw, full, source)


def _walk_to_parent(cfg: CN, key: str, source: str):
    root = cfg
    parts = key.split(".")
    node = cfg
    for part in parts[:-1]:
        child = node.get(part) if isinstance(node, CN) else None
        if not isinstance(child, CN):
            if isinstance(node, CN) and node.is_new_allowed() and child is None:
                node[part] = CN(new_allowed=True)
                child = node[part]
            else:
                raise _unknown_key(key, source, root)
        node = child
    return node, parts[-1]


def _all_keys(node: CN, prefix: str = "") -> Iterable[str]:
    for key, value in node.items():
        yield prefix + key
        if isinstance(value, CN):
            yield from _all_keys(value, prefix + key + ".")


def _unknown_key(key: str, source: str, root: CN) -> ConfigError:
    """Name the unknown key and the valid keys closest to it (the keys of the tree ``root`` of the family)."""
    valid = list(_all_keys(root))
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.6)
    if not close:
        leaf = key.split(".")[-1]
        close = [k for k in valid if k.split(".")[-1] in
                 difflib.get_close_matches(leaf, [v.split(".")[-1] for v in valid], n=3, cutoff=0.7)][:3]
    hint = f"; closest valid keys: {', '.join(close)}" if close else ""
    return ConfigError(f"{source}: unknown config key {key}{hint}")


def _parse_literal(raw: str) -> Any:
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def _coerce(default: Any, value: Any, raw: Optional[str], key: str, source: str) -> Any:
    """Return ``value`` converted to the type of ``default`` where that is lossless, else raise."""
    expected = type(default)
    if default is None:
        return value
    if expected is bool:
        if isinstance(value, bool):
            return value
    elif expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif expected is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif expected is str:
        if isinstance(value, str):
            return value
        if raw is not None:  # a command-line string that happens to parse as a number
            return raw
    elif expected in (list, tuple):
        if isinstance(value, (list, tuple)):
            return expected(value)
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            return expected([value])
    else:
        if isinstance(value, expected):
            return value
    raise ConfigError(f"{source}: config key {key} expects {_type_name(expected)}, "
                      f"got {value!r} ({type(value).__name__})")


def _type_name(expected: type) -> str:
    return {bool: "a bool (True/False)", int: "an int", float: "a number", str: "a string",
            list: "a list", tuple: "a list"}.get(expected, expected.__name__)
