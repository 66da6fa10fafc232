"""Reading a config file's YAML without trusting it: PyYAML's safe loader, with
what it lets through refused here, each as a one-line ConfigError: a key given
twice in one mapping (PyYAML keeps the last silently), aliases that expand to
more values than any config has (an alias bomb: 9 levels of 9 took 8.9 s and
709 MB to be refused by the schema check), and a file over a megabyte.
"""

from __future__ import annotations

import functools
from typing import Any

from cocode.errors import ConfigError

MAX_CONFIG_BYTES = 1024 * 1024
MAX_EXPANDED_NODES = 100_000  # what a config with YAML aliases may expand to


@functools.cache
def _loader():
    """The loader class, made at first use: PyYAML costs ~13 ms of CPU to import,
    which every service and command line would pay at start even with no config
    file to read."""
    import yaml

    class _Loader(yaml.SafeLoader):
        """safe_load that refuses a key given twice in one mapping (YAML says keys are
        unique; PyYAML would silently keep the last one)."""

        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen = set()
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                        continue  # `<<:` merges may be overridden; complex keys fail later
                    key = self.construct_object(key_node, deep=deep)
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            "while reading a mapping", node.start_mark,
                            f"duplicate key {key!r}", key_node.start_mark)
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return _Loader


def _expanded_size(value: Any, limit: int) -> int:
    """Nodes the value has once YAML aliases are expanded (as checking walks it),
    counted without expanding: each shared object is sized once. Stops past limit."""
    sizes: dict[int, int] = {}

    def size(v: Any) -> int:
        if not isinstance(v, (dict, list)):
            return 1
        if id(v) in sizes:
            return sizes[id(v)]
        sizes[id(v)] = limit + 1  # a cycle (`&a [*a]`) counts as too big
        items = list(v.items()) if isinstance(v, dict) else v
        total = 1
        for item in items:
            total += sum(size(x) for x in item) if isinstance(v, dict) else size(item)
            if total > limit:
                break
        sizes[id(v)] = total
        return total

    return size(value)


def parse_yaml(text: str, label: str) -> Any:
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{label}: {len(text)} bytes is too big for a config file (at most {MAX_CONFIG_BYTES})")
    import yaml

    try:
        value = yaml.load(text, Loader=_loader())  # noqa: S506 - a SafeLoader subclass
        if _expanded_size(value, MAX_EXPANDED_NODES) > MAX_EXPANDED_NODES:
            raise ConfigError(f"{label}: its YAML aliases expand to over {MAX_EXPANDED_NODES} values "
                              "(an alias bomb?): write the values out")
        return value
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = e.problem or e.context or "not valid YAML"
        if problem.startswith("duplicate key"):
            raise ConfigError(f"{label}: {problem}{at}: give each key once") from None
        raise ConfigError(f"{label}: YAML syntax error{at}: {_one_line(problem)}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{label}: YAML syntax error: {_one_line(str(e))}") from None




def _one_line(text: str) -> str:
    return " ".join(text.split())
