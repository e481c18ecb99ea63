"""Method adapters, one module per family; the registry imports the built-in ones."""
