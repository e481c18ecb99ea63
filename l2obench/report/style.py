"""How methods look in every figure of a report: a colour, a marker, a fill and a line style,
fixed by the method's label alone.

A page may show two dozen methods at once (PyEPO's 18 losses beside the DYS layers and the
baselines), and a reader must tell every one apart, also where two lines coincide. So a style is
a *slot*: slot ``i`` takes colour ``i mod 10`` of a qualitative palette (:data:`PALETTE`),
marker ``i mod 13``, a hollow marker and a dashed line on every other ten slots and a dotted
line on every third ten; two slots below :data:`PERIOD` never share all four. The built-in
methods hold the first slots in the fixed order of :data:`BUILT_IN`; any other label (a
plugin's method, or a built-in one with parameters the page keeps in its label) takes the slot
a stable hash of its label (SHA-256) picks among the rest. A style therefore depends on its own
label only: adding a method to a page never restyles another, on any page. Two labels outside
the table can hash to the same slot (one chance in about 750 for a pair); the legends and the
tables still name them.

The family (DYS layers, other layers, losses over the exact oracle, baselines) orders and groups
the legends.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from matplotlib.colors import to_rgb

#: Method families in legend order: record value -> name on the pages.
FAMILIES: dict[str, str] = {
    "dys": "DYS layers",
    "layer": "other layers",
    "pyepo": "losses over the exact oracle",
    "baseline": "baselines",
    "other": "other methods",
}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "p", "*", "d")
_LINESTYLES = ("-", "--", ":")
#: A qualitative palette: matplotlib's ``tab10`` with its grey (read as "disabled", and the
#: face of the not-ok markers) replaced by black.
PALETTE: tuple[str, ...] = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                            "#e377c2", "#000000", "#bcbd22", "#17becf")
#: Slots before any style repeats: lcm(10 colours, 13 markers, 20 for the fill, 30 for lines).
PERIOD = 780
#: Built-in method labels in slot order (labels as the pages show them, with the variant
#: parameters that make a different loss). Append only: reordering restyles published figures.
BUILT_IN: tuple[str, ...] = (
    "dys-jfb", "dys-jfb-jax", "dys-unrolled", "dys-implicit", "cvx-net", "two-stage", "spo+",
    "pertopt[loss=pfyl,perturbation=additive]", "pertopt[loss=pfyl,perturbation=multiplicative]",
    "pertopt[loss=dpo,perturbation=additive]", "pertopt[loss=dpo,perturbation=multiplicative]",
    "blackbox", "blackbox[loss=objective]", "nid", "imle", "aimle", "pg", "rfwo", "rfy", "nce",
    "cmap", "ltr[kind=listwise]", "ltr[kind=pairwise]", "ltr[kind=pointwise]", "cave",
    "pertopt", "ltr", "pertopt[perturbation=multiplicative]", "pertopt[loss=dpo]",
    "implicit-jfb", "implicit-jacobian", "implicit-unrolled", "explicit",
    "fbp", "tv-min", "unet", "ffpn", "l2o-jfb", "l2o-unrolled", "l2o-implicit",
)
#: Families of records written before ``method_family`` was a column, by method-name prefix.
_LEGACY_PREFIXES = {"dys-": "dys", "cvx-": "layer", "spo": "pyepo", "pertopt": "pyepo",
                    "blackbox": "pyepo", "two-stage": "baseline"}


@dataclass(frozen=True)
class Style:
    """How one method label is drawn."""

    family: str
    colour: tuple[float, float, float]
    marker: str
    hollow: bool = False
    linestyle: str = "-"

    def line(self, markersize: float = 4.5) -> dict[str, Any]:
        """Keyword arguments of :meth:`matplotlib.axes.Axes.plot` for a line in this style."""
        return {"color": self.colour, "marker": self.marker, "markersize": markersize,
                "linestyle": self.linestyle,
                "markerfacecolor": "white" if self.hollow else self.colour,
                "markeredgecolor": self.colour}


def family_of(method: str, recorded: object) -> str:
    """The family of a record: its ``method_family``, else (older records) from the name."""
    if isinstance(recorded, str) and recorded in FAMILIES:
        return recorded
    for prefix, family in _LEGACY_PREFIXES.items():
        if method.startswith(prefix):
            return family
    return "other"


def slot(label: str) -> int:
    """The style slot of ``label``: its place in :data:`BUILT_IN`, else one its hash picks."""
    if label in BUILT_IN:
        return BUILT_IN.index(label)
    digest = int.from_bytes(hashlib.sha256(label.encode("utf-8")).digest()[:8], "big")
    return len(BUILT_IN) + digest % (PERIOD - len(BUILT_IN))


def style_of(label: str, family: str) -> Style:
    """The :class:`Style` of one method label (a pure function of the label)."""
    i = slot(label)
    r, g, b = to_rgb(PALETTE[i % len(PALETTE)])
    return Style(family, (r, g, b), MARKERS[i % len(MARKERS)], hollow=(i // 10) % 2 == 1,
                 linestyle=_LINESTYLES[(i // 10) % len(_LINESTYLES)])


def method_styles(records: pd.DataFrame) -> dict[str, Style]:
    """A :class:`Style` for every method label of ``records``, grouped and ordered by family."""
    families = records.get("method_family", pd.Series(index=records.index, dtype=object))
    members: dict[str, set[str]] = {}
    for method, label, recorded in zip(records["method"], records["method_label"], families,
                                       strict=True):
        members.setdefault(family_of(str(method), recorded), set()).add(str(label))
    return {label: style_of(label, family)
            for family in FAMILIES for label in sorted(members.get(family, ()))}


def by_family(styles: dict[str, Style], labels: Iterable[str]) -> list[tuple[str, list[str]]]:
    """``labels`` grouped as the legends show them: (family name, its labels), in order."""
    wanted = set(labels)
    return [(FAMILIES[family], [label for label, s in styles.items()
                                if s.family == family and label in wanted])
            for family in FAMILIES
            if any(s.family == family and label in wanted for label, s in styles.items())]
