"""The built-in families' torch networks and the layers they share. Only building, training or loading a
network imports this package (and torch): a spec parses, and a CLI error arrives, without it."""
