"""Market-data sources: live venue parsers and sessions, and historical file replay."""
