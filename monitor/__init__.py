"""riskmon's pure core: value types, configuration schema, estimators, risk figures, rules, engine.

No I/O and no import of the layers above it (``feeds``, ``alerts``, ``bus``, ``service``):
time arrives with the ticks, so a replay and the live daemon run the same code.
"""
