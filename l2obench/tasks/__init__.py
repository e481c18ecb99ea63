"""Task families beyond learning costs for an optimisation problem (classification, ...)."""
