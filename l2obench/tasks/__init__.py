"""Task families beyond the cost-prediction problems: each family is a package of its own."""
