"""Run configs: each run's settings as one dataclass, each field declared once with its
default, help, choices and check; the CLI is generated from them.

- :mod:`.fields`: :func:`option` and :class:`RunConfig` (validation at construction);
- :mod:`.cli`: flags from fields, and configs back from parsed flags;
- :mod:`.shared`: the data, parent, runtime and ensemble field groups;
- :mod:`.sparse`, :mod:`.noisy`, :mod:`.rl`: the runs' configs.
"""

from typing import Any

from .cli import add_config_arguments, config_from_args, layer_list
from .fields import RunConfig, flag_of, option, validate_fields

_SHARED = ("DataFields", "EnsembleFields", "ParentFields", "RuntimeFields")


def __getattr__(name: str) -> Any:
    # The field groups load data and training code: imported on first use, so that fields.py
    # and cli.py (the flag machinery, e.g. of the data generators' commands) stay light.
    if name in _SHARED:
        from . import shared

        return getattr(shared, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DataFields",
    "EnsembleFields",
    "ParentFields",
    "RunConfig",
    "RuntimeFields",
    "add_config_arguments",
    "config_from_args",
    "flag_of",
    "layer_list",
    "option",
    "validate_fields",
]
