"""Problem generators with their exact oracles; the registry imports the built-in ones."""
