"""Studies of l2obench's own choices (DYS at scale and its accuracy, memory, formulations,
solvers): the measurements behind its defaults."""
