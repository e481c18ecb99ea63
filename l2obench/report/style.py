"""How methods look in every figure of a report: a colour family per method family, a marker each.

A reader should tell the DYS layers from the PyEPO losses from the baselines at a glance, so each
family has its own colour map (blues, purples, oranges, greens, greys) and its methods take
shades of it; markers tell the methods within a family apart. One style map is built per report
from all of its records, so a method looks the same in every figure and every suite of the page.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib import colormaps

#: Method families in legend order: record value -> (name on the pages, colour map).
FAMILIES: dict[str, tuple[str, str]] = {
    "dys": ("DYS layers", "Blues"),
    "layer": ("other layers", "Purples"),
    "pyepo": ("losses over the exact oracle", "Oranges"),
    "baseline": ("baselines", "Greens"),
    "other": ("other methods", "Greys"),
}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "p", "*")
#: Families of records written before ``method_family`` was a column, by method-name prefix.
_LEGACY_PREFIXES = {"dys-": "dys", "cvx-": "layer", "spo": "pyepo", "pertopt": "pyepo",
                    "blackbox": "pyepo", "two-stage": "baseline"}


@dataclass(frozen=True)
class Style:
    """How one method label is drawn."""

    family: str
    colour: tuple[float, float, float]
    marker: str


def family_of(method: str, recorded: object) -> str:
    """The family of a record: its ``method_family``, else (older records) from the name."""
    if isinstance(recorded, str) and recorded in FAMILIES:
        return recorded
    for prefix, family in _LEGACY_PREFIXES.items():
        if method.startswith(prefix):
            return family
    return "other"


def method_styles(records: pd.DataFrame) -> dict[str, Style]:
    """A :class:`Style` for every method label of ``records``, grouped and ordered by family."""
    families = records.get("method_family", pd.Series(index=records.index, dtype=object))
    members: dict[str, set[str]] = {}
    for method, label, recorded in zip(records["method"], records["method_label"], families,
                                       strict=True):
        members.setdefault(family_of(str(method), recorded), set()).add(str(label))
    styles = {}
    for family in FAMILIES:
        labels = sorted(members.get(family, ()))
        cmap = colormaps[FAMILIES[family][1]]
        shades = np.linspace(0.85, 0.45, len(labels)) if len(labels) > 1 else [0.7] * len(labels)
        for i, (label, shade) in enumerate(zip(labels, shades, strict=True)):
            r, g, b, _ = cmap(float(shade))
            styles[label] = Style(family, (r, g, b), MARKERS[i % len(MARKERS)])
    return styles


def by_family(styles: dict[str, Style], labels: Iterable[str]) -> list[tuple[str, list[str]]]:
    """``labels`` grouped as the legends show them: (family name, its labels), in order."""
    wanted = set(labels)
    return [(FAMILIES[family][0], [label for label, s in styles.items()
                                   if s.family == family and label in wanted])
            for family in FAMILIES
            if any(s.family == family and label in wanted for label, s in styles.items())]
