"""Alert sinks: where an AlertEvent goes once a rule fires or resolves."""
