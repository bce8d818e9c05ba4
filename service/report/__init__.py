"""``riskmon report``: a replay's output directory as one self-contained HTML file.

- :mod:`service.report.record`: what a replay records for its report beside the snapshot and
  alert tables (component VaR, the correlation matrix at the run's extremes, alert peaks).
- :mod:`service.report.facts`: the run's facts (``run.json``).
- :mod:`service.report.load`: reading and validating a replay directory, time ranges.
- :mod:`service.report.episodes`: alert events paired into firing spans.
- :mod:`service.report.figures`, :mod:`service.report.heatmap`: matplotlib figures (Agg).
- :mod:`service.report.page`: the HTML, images embedded as base64 PNG, no external reference.
- :mod:`service.report.build`: directory in, HTML (and optionally PNG files) out.
"""
