"""One pure protocol module per venue (plans, subscribe frames, a parser); ``fields`` is shared."""
