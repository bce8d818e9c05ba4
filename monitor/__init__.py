"""riskmon's pure core: estimators, risk figures, rules, and the composition root (app, cli)."""
