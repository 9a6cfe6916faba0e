"""The configuration templates committed next to this module, and rendering them."""

from __future__ import annotations

from importlib import resources
from string import Template


def render(name: str, **values: object) -> str:
    """The template ``name`` with every ``${key}`` replaced; a missing key raises ``KeyError``."""
    text = resources.files("wattstream.localcluster").joinpath(name).read_text()
    return Template(text).substitute({key: str(value) for key, value in values.items()})
