"""Task families: what a model outputs for a split, and how those outputs are scored.

:mod:`l2obench.tasks.base` holds the contract (:class:`~l2obench.tasks.base.Metric`,
:class:`~l2obench.tasks.base.Scores`, :class:`~l2obench.tasks.base.Task` and the
``l2obench.tasks`` registry); each family is a module or package of its own
(:mod:`l2obench.tasks.decision`, predict-then-optimize; :mod:`l2obench.tasks.ct`, CT
reconstruction).
"""
