"""One pure protocol module per venue: connection plans, subscribe frames and a parser."""
