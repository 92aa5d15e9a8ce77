"""SC keys: the services communication key of a Survey account member (K1, K2)."""
