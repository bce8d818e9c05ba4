"""Config loading: shipped files, durations, defaults, overrides and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.config.catalogue import confidence_tag, metric_catalogue
from monitor.config.durations import DURATION_EXPECTED, format_duration, parse_duration
from monitor.config.loading import load_config
from monitor.config.schema import Config
from monitor.errors import ConfigError
from monitor.model import Severity
from tests.conftest import REPO

CONFIG_DIR = REPO / "config"
UNIVERSE = '[universe]\nsymbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]\n'
PORTFOLIO = """
[[portfolios]]
name = "main"
positions = [{ symbol = "BTCUSDT", quantity = 1.5 }, { symbol = "ETHUSDT", quantity = -20 }]
"""
COINS = "AAVE ADA AVAX BCH BNB BTC DOGE DOT ETH LINK LTC NEAR PEPE SOL SUI TON TRX UNI XRP"
DATASET_SYMBOLS = {f"{coin}USDT" for coin in COINS.split(" ")}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "riskmon.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> Config:
    return load_config(write(tmp_path, text), environ={} if environ is None else environ)


def error(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    """Load ``text`` expecting a ConfigError; return its message after checking the path prefix."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={} if environ is None else environ)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    return message


def rule(body: str, name: str = "r") -> str:
    return f'\n[[rules]]\nname = "{name}"\n{body}\n'


# --- shipped files ---------------------------------------------------------------------------


def test_daemon_config_loads_with_its_rules() -> None:
    """config/riskmon.toml is valid and holds the documented universe, portfolio and rules."""
    config = load_config(CONFIG_DIR / "riskmon.toml", environ={})
    assert config.universe.symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT")
    (main,) = config.portfolios
    assert main.name == "main"
    assert {(p.symbol, p.quantity) for p in main.positions} >= {("ETHUSDT", -20.0)}
    spike = next(r for r in config.rules if r.name == "market-correlation-spike")
    assert (spike.metric, spike.op, spike.threshold) == ("avg_correlation", ">", 0.7)
    assert (spike.for_, spike.resolve_threshold, spike.severity) == (300.0, 0.6, Severity.CRITICAL)
    metrics = {r.metric: r for r in config.rules}
    assert metrics["var_99"].labels.get("portfolio") == "main"
    assert dict(metrics["correlation"].labels) == {"a": "BTCUSDT", "b": "ETHUSDT"}
    assert config.source.endswith("riskmon.toml")


def test_replay_config_covers_the_whole_dataset() -> None:
    """config/example-replay.toml tracks all 19 symbols of the shared 5-minute data set."""
    config = load_config(CONFIG_DIR / "example-replay.toml", environ={})
    assert set(config.universe.symbols) == DATASET_SYMBOLS
    assert config.estimator.halflife == 6 * 3600.0
    assert config.estimator.slow_halflife == 7 * 86400.0
    assert config.estimator.min_observations == 30
    assert config.replay.snapshot_interval == 300.0
    assert all(p.quantity > 0 for p in config.portfolios[0].positions)
    assert [r.metric for r in config.rules] == [
        "avg_correlation",
        "absorption_ratio_shift",
        "var_99",
    ]


# --- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30.0),
        ("20m", 1200.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1.5h", 5400.0),
        ("0s", 0.0),
        (" 2m ", 120.0),
    ],
)
def test_parse_duration_reads_every_unit(text: str, seconds: float) -> None:
    """Each unit ms, s, m, h, d and decimal numbers convert to seconds."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "  ", "-5s", "5", "h", "1w", "1h30m", "1 h", "abc", "1e3s"])
def test_parse_duration_rejects_garbage_with_the_expected_forms(text: str) -> None:
    """Malformed durations raise ValueError that shows the accepted forms and the input."""
    with pytest.raises(ValueError, match="expected a duration like") as info:
        parse_duration(text)
    assert str(info.value).startswith(DURATION_EXPECTED)
    assert f"got {text!r}".replace("'", '"') in str(info.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (86400.0, "1d"),
        (5400.0, "90m"),
        (30.0, "30s"),
        (0.25, "250ms"),
        (0.0, "0s"),
        (1.5, "1500ms"),
    ],
)
def test_format_duration_writes_the_largest_exact_unit(seconds: float, text: str) -> None:
    """format_duration picks the largest unit that divides the duration exactly."""
    assert format_duration(seconds) == text


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["ms", "s", "m", "h", "d"]))
def test_format_duration_round_trips(count: int, unit: str) -> None:
    """parse_duration reads back what format_duration writes."""
    seconds = parse_duration(f"{count}{unit}")
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("30s", 30.0), ("20m", 1200.0), ("1h", 3600.0), ("1d", 86400.0)],
)
def test_config_holds_durations_as_seconds(tmp_path: Path, text: str, seconds: float) -> None:
    """Every duration form in the TOML becomes float seconds under the TOML key's name."""
    config = load(
        tmp_path,
        UNIVERSE
        + f'[estimator]\nhalflife = "{text}"\nslow_halflife = "30d"\nmax_out_of_order = "{text}"\n'
        + rule(f'metric = "avg_correlation"\nop = ">"\nthreshold = 0.7\nfor = "{text}"'),
    )
    assert config.estimator.halflife == pytest.approx(seconds)
    assert config.estimator.max_out_of_order == pytest.approx(seconds)
    assert config.rules[0].for_ == pytest.approx(seconds)


@pytest.mark.parametrize("value", ['"abc"', "1200", '"-1h"', '"1w"'])
def test_bad_duration_names_key_and_value(tmp_path: Path, value: str) -> None:
    """A malformed duration names the key, the accepted forms and the value found."""
    message = error(tmp_path, UNIVERSE + f"[estimator]\nhalflife = {value}\n")
    assert f"[estimator] halflife: {DURATION_EXPECTED}, got {value}" in message


def test_zero_halflife_is_rejected(tmp_path: Path) -> None:
    """Durations that divide (half-lives, intervals) must be positive."""
    message = error(tmp_path, UNIVERSE + '[replay]\nsnapshot_interval = "0s"\n')
    assert '[replay] snapshot_interval: expected a positive duration like "30s"' in message


def test_slow_halflife_must_exceed_halflife(tmp_path: Path) -> None:
    """The slow estimator is the baseline, so its half-life must be the longer one."""
    message = error(tmp_path, UNIVERSE + '[estimator]\nhalflife = "2d"\n')
    assert '[estimator] slow_halflife: expected a duration longer than halflife ("2d")' in message


def test_stall_after_must_exceed_idle_snapshot(tmp_path: Path) -> None:
    """The engine loop may wait idle_snapshot between turns: that is no stall."""
    message = error(tmp_path, UNIVERSE + '[live]\nidle_snapshot = "20s"\n')
    assert '[live] stall_after: expected a duration longer than idle_snapshot ("20s")' in message


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("k = -1", "[filter] k: expected a number >= 0.0, got -1"),
        ("min_jump = 0", "[filter] min_jump: expected a number > 0.0, got 0"),
        ("confirmations = 0", "[filter] confirmations: expected an integer >= 1, got 0"),
        ("max_hold = 5", '[filter] max_hold: expected a duration like "30s"'),
    ],
)
def test_bad_filter_values(tmp_path: Path, snippet: str, expected: str) -> None:
    """The bad-print filter's keys are checked like every other section's."""
    assert expected in error(tmp_path, UNIVERSE + f"[filter]\n{snippet}\n")


def test_the_filter_and_the_clock_checks_have_defaults(tmp_path: Path) -> None:
    """On by default; ``k = 0`` turns the filter off (the only way to)."""
    config = load(tmp_path, UNIVERSE + "[filter]\nk = 0\n")
    assert config.filter.k == 0.0
    assert config.filter.min_jump == 0.2
    assert load(tmp_path, UNIVERSE).filter.k == 10.0
    assert config.live.max_clock_skew == 2.0
    assert config.live.stall_after == 15.0


# --- defaults and derived values -------------------------------------------------------------


def test_minimal_config_gets_documented_defaults(tmp_path: Path) -> None:
    """Only [universe] symbols is required; everything else has the documented default."""
    config = load(tmp_path, UNIVERSE)
    assert config.universe.watch_pairs == ()
    est = config.estimator
    assert (est.halflife, est.slow_halflife, est.min_observations, est.max_out_of_order) == (
        1200.0,
        86400.0,
        30,
        5.0,
    )
    risk = config.risk
    assert (risk.horizon, risk.confidence, risk.distribution, risk.dof) == (
        86400.0,
        (0.95, 0.99),
        "student-t",
        4.0,
    )
    assert (config.portfolios, config.rules, config.replay.snapshot_interval) == ((), (), 60.0)
    assert config.source == str(tmp_path / "riskmon.toml")


def test_rule_defaults(tmp_path: Path) -> None:
    """A rule defaults to for 0s, resolve at its threshold, warning severity and no labels."""
    config = load(tmp_path, UNIVERSE + rule('metric = "turbulence"\nop = ">="\nthreshold = 9'))
    (only,) = config.rules
    assert (only.for_, only.resolve_threshold, only.severity, only.labels) == (
        0.0,
        9.0,
        Severity.WARNING,
        (),
    )


def test_portfolio_defaults_to_usd(tmp_path: Path) -> None:
    """base_currency defaults to USD."""
    assert load(tmp_path, UNIVERSE + PORTFOLIO).portfolios[0].base_currency == "USD"


def test_tracked_symbols_append_position_symbols_in_order(tmp_path: Path) -> None:
    """tracked_symbols is the universe, then position symbols outside it, each once."""
    text = (
        UNIVERSE
        + PORTFOLIO.replace('"ETHUSDT"', '"DOGEUSDT"')
        + PORTFOLIO.replace('"main"', '"other"').replace('"BTCUSDT"', '"ADAUSDT"')
    )
    config = load(tmp_path, text)
    assert config.tracked_symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT", "ADAUSDT")


def test_confidence_is_sorted_and_tagged(tmp_path: Path) -> None:
    """Confidence levels come back ascending, with the tags used in metric names."""
    config = load(tmp_path, UNIVERSE + "[risk]\nconfidence = [0.99, 0.975, 0.9]\n")
    assert config.risk.confidence == (0.9, 0.975, 0.99)
    assert config.risk.tags == ("90", "975", "99")


@pytest.mark.parametrize(
    ("level", "tag"), [(0.95, "95"), (0.975, "975"), (0.99, "99"), (0.9, "90"), (0.999, "999")]
)
def test_confidence_tag(level: float, tag: str) -> None:
    """A tag is the digits after "0.", at least two, without trailing zeros."""
    assert confidence_tag(level) == tag


def test_catalogue_has_metrics_per_configured_level() -> None:
    """var_D, cvar_D and stressed_var_D exist for each configured level only."""
    catalogue = metric_catalogue((0.95, 0.975))
    assert {"var_95", "cvar_975", "stressed_var_95", "avg_correlation"} <= set(catalogue)
    assert "var_99" not in catalogue
    assert catalogue["correlation"].required_labels == ("a", "b")


def test_config_objects_are_frozen(tmp_path: Path) -> None:
    """Validated config cannot be changed after start-up."""
    config = load(tmp_path, UNIVERSE)
    with pytest.raises(AttributeError):
        config.estimator.min_observations = 3  # type: ignore[misc]


# --- unknown keys, types and values ----------------------------------------------------------


def test_unknown_nested_key_names_file_key_and_allowed_keys(tmp_path: Path) -> None:
    """A typo'd key is an error naming the section, the key and the keys that exist."""
    message = error(tmp_path, UNIVERSE + '[estimator]\nhalfife = "1h"\n')
    assert "[estimator] halfife: unknown key; expected one of halflife, slow_halflife" in message


def test_unknown_key_in_a_rule_names_its_index(tmp_path: Path) -> None:
    """Keys inside arrays of tables are named with the entry's index."""
    text = UNIVERSE + rule('metric = "turbulence"\nop = ">"\nthreshold = 1')
    text += rule('metric = "turbulence"\nop = ">"\nthreshold = 1\ncolour = "red"', name="s")
    message = error(tmp_path, text)
    assert "[[rules]][1] colour: unknown key; expected one of name, metric, op" in message


def test_unknown_top_level_section(tmp_path: Path) -> None:
    """An unknown section is an error listing the sections that exist."""
    message = error(tmp_path, UNIVERSE + "[alerting]\nurl = 1\n")
    assert "[alerting]: unknown section; expected one of [universe], [estimator]" in message
    assert "[[rules]]" in message


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("replay = 5\n", "[replay]: expected a table, got 5"),
        ("rules = 5\n", "[[rules]]: expected an array"),
    ],
)
def test_section_of_wrong_type(tmp_path: Path, snippet: str, expected: str) -> None:
    """A section written as a scalar names the section and the expected shape."""
    assert expected in error(tmp_path, snippet + UNIVERSE)


def test_missing_universe_section(tmp_path: Path) -> None:
    """[universe] is required."""
    assert "[universe]: missing required section" in error(tmp_path, "[estimator]\n")


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        (
            '[estimator]\nmin_observations = "x"\n',
            '[estimator] min_observations: expected an integer, got "x"',
        ),
        (
            "[estimator]\nmin_observations = 1\n",
            "[estimator] min_observations: expected an integer >= 2, got 1",
        ),
        ("[risk]\ndof = 2\n", "[risk] dof: expected a number > 2.0, got 2"),
        ("[risk]\nconfidence = 0.99\n", "[risk] confidence: expected an array, got 0.99"),
        (
            "[risk]\nconfidence = [0.99, 1.0]\n",
            "[risk] confidence[1]: expected a number < 1.0, got 1.0",
        ),
        ("[risk]\nconfidence = [0.5]\n", "[risk] confidence[0]: expected a number > 0.5, got 0.5"),
        ("[risk]\nconfidence = [0.9999]\n", "[risk] confidence[0]: expected at most 3 decimals"),
        ("[risk]\nconfidence = [0.99, 0.99]\n", "[risk] confidence[1]: duplicate level 0.99"),
        (
            PORTFOLIO.replace("1.5", '"1.5"'),
            '[[portfolios]][0] positions[0].quantity: expected a number, got "1.5"',
        ),
        (
            PORTFOLIO.replace("1.5", "0"),
            "[[portfolios]][0] positions[0].quantity: expected a finite non-zero number, got 0.0",
        ),
        (PORTFOLIO.replace("1.5", "inf"), "positions[0].quantity: expected a finite non-zero"),
        (
            PORTFOLIO.replace('"ETHUSDT"', '"BTCUSDT"'),
            'positions[1].symbol: duplicate symbol "BTCUSDT"',
        ),
        (
            PORTFOLIO.replace('"main"', '"my book"'),
            "[[portfolios]][0] name: expected a string matching",
        ),
        (PORTFOLIO + PORTFOLIO, '[[portfolios]][1] name: duplicate name "main"'),
        (
            '[[portfolios]]\nname = "p"\npositions = []\n',
            "[[portfolios]][0] positions: expected an array of length >= 1",
        ),
        (
            '[[portfolios]]\npositions = [{ symbol = "BTCUSDT", quantity = 1 }]\n',
            "[[portfolios]][0] name: missing required key",
        ),
    ],
)
def test_bad_values_name_key_expectation_and_value(
    tmp_path: Path, snippet: str, expected: str
) -> None:
    """Wrong types and out-of-range values name the key, what was expected and what was found."""
    assert expected in error(tmp_path, UNIVERSE + snippet)


@pytest.mark.parametrize(
    ("universe", "expected"),
    [
        ("symbols = []", "[universe] symbols: expected an array of length >= 1, got []"),
        ('symbols = ["btcusdt"]', "[universe] symbols[0]: expected a string matching regex"),
        ('symbols = ["BTCUSDT", "BTCUSDT"]', '[universe] symbols[1]: duplicate symbol "BTCUSDT"'),
        (
            'symbols = ["BTCUSDT"]\nwatch_pairs = [["BTCUSDT", "ETHUSDT"]]',
            '[universe] watch_pairs[0][1]: "ETHUSDT" is not in [universe] symbols',
        ),
        (
            'symbols = ["BTCUSDT"]\nwatch_pairs = [["BTCUSDT", "BTCUSDT"]]',
            "[universe] watch_pairs[0]: expected two different symbols",
        ),
        (
            'symbols = ["BTCUSDT"]\nwatch_pairs = [["BTCUSDT"]]',
            '[universe] watch_pairs[0]: expected an array of length 2, got ["BTCUSDT"]',
        ),
    ],
)
def test_bad_universe(tmp_path: Path, universe: str, expected: str) -> None:
    """Symbols are upper-case, unique and non-empty; watch pairs join two different symbols."""
    assert expected in error(tmp_path, f"[universe]\n{universe}\n")


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ('op = "!="', '[[rules]][0] op: expected one of "<", "<=", ">", ">=", got "!="'),
        (
            'op = ">"\nseverity = "loud"',
            'severity: expected one of "info", "warning", "critical", got "loud"',
        ),
        ('op = ">"\nthreshold = "high"', '[[rules]][0] threshold: expected a number, got "high"'),
        ('op = ">"\nthreshold = nan', "[[rules]][0] threshold: expected a finite number, got nan"),
        ('op = ">"\nfor = 300', f"[[rules]][0] for: {DURATION_EXPECTED}, got 300"),
    ],
)
def test_bad_rule_fields(tmp_path: Path, snippet: str, expected: str) -> None:
    """op and severity list their allowed values; numbers and durations are type-checked."""
    body = 'metric = "turbulence"\n' + snippet
    if "threshold" not in snippet:
        body += "\nthreshold = 1"
    assert expected in error(tmp_path, UNIVERSE + rule(body))


def test_bad_distribution(tmp_path: Path) -> None:
    """distribution is one of three names."""
    message = error(tmp_path, UNIVERSE + '[risk]\ndistribution = "cauchy"\n')
    assert '[risk] distribution: expected one of "cornish-fisher", "normal", "student-t"' in message
    assert 'got "cauchy"' in message


@pytest.mark.parametrize(
    ("risk", "expected"),
    [
        ("option_paths = 1000", "[risk] option_paths: expected a power of two (Sobol points)"),
        ("option_paths = 128", "[risk] option_paths: expected an integer >= 256"),
        ("vol_of_vol = -0.1", "[risk] vol_of_vol: expected a number >= 0.0"),
        ("spot_vol_correlation = -1.5", "[risk] spot_vol_correlation: expected a number >= -1.0"),
    ],
)
def test_bad_option_var_settings(tmp_path: Path, risk: str, expected: str) -> None:
    """Monte Carlo paths come in powers of two; IV-shock settings in their ranges."""
    assert expected in error(tmp_path, UNIVERSE + f"[risk]\n{risk}\n")


def test_bad_stress_settings(tmp_path: Path) -> None:
    """Coverage in (0, 1]; shocks named once, and not like a built-in scenario (metric labels)."""
    message = error(tmp_path, UNIVERSE + "[stress]\nextended_coverage = 0\n")
    assert "[stress] extended_coverage: expected a number > 0.0" in message
    shock = '{ name = "%s", moves = { BTCUSDT = -0.3 } }'
    message = error(tmp_path, UNIVERSE + f"[stress]\nshocks = [{shock % 'iv_up'}]\n")
    assert '[stress] shocks[0].name: "iv_up" names a built-in scenario' in message
    twice = f"[stress]\nshocks = [{shock % 'crash'}, {shock % 'crash'}]\n"
    assert '[stress] shocks[1].name: duplicate name "crash"' in error(tmp_path, UNIVERSE + twice)


def test_missing_rule_threshold(tmp_path: Path) -> None:
    """threshold is required."""
    message = error(tmp_path, UNIVERSE + rule('metric = "turbulence"\nop = ">"'))
    assert "[[rules]][0] threshold: missing required key" in message


def test_duplicate_rule_names(tmp_path: Path) -> None:
    """Rule names are unique, since they name the alerts."""
    body = 'metric = "turbulence"\nop = ">"\nthreshold = 1'
    message = error(tmp_path, UNIVERSE + rule(body, "same") + rule(body, "same"))
    assert '[[rules]][1] name: duplicate name "same"' in message


@pytest.mark.parametrize(
    ("op", "threshold", "resolve", "bound"),
    [
        (">", 0.7, 0.8, "<="),
        (">=", 0.7, 0.71, "<="),
        ("<", 0.5, 0.4, ">="),
        ("<=", 0.5, 0.49, ">="),
    ],
)
def test_resolve_threshold_must_lie_on_the_safe_side(
    tmp_path: Path, op: str, threshold: float, resolve: float, bound: str
) -> None:
    """Hysteresis: rules above a threshold resolve lower, rules below it resolve higher."""
    body = f'metric = "avg_correlation"\nop = "{op}"\nthreshold = {threshold}\n'
    body += f"resolve_threshold = {resolve}"
    message = error(tmp_path, UNIVERSE + rule(body))
    assert (
        f'[[rules]][0] resolve_threshold: expected {bound} threshold ({threshold}) for op "{op}"'
        in message
    )
    assert f"got {resolve}" in message


@pytest.mark.parametrize(("op", "resolve"), [(">", 0.6), (">", 0.7), ("<", 0.8), ("<=", 0.7)])
def test_resolve_threshold_on_the_safe_side_loads(tmp_path: Path, op: str, resolve: float) -> None:
    """A resolve threshold at or beyond the firing threshold's safe side is accepted."""
    body = (
        f'metric = "avg_correlation"\nop = "{op}"\nthreshold = 0.7\nresolve_threshold = {resolve}'
    )
    assert load(tmp_path, UNIVERSE + rule(body)).rules[0].resolve_threshold == resolve


# --- metrics and labels ----------------------------------------------------------------------


def test_unknown_metric_lists_the_catalogue(tmp_path: Path) -> None:
    """An unknown metric names the rule and lists the metrics that exist."""
    message = error(tmp_path, UNIVERSE + rule('metric = "avg_corr"\nop = ">"\nthreshold = 1'))
    assert (
        '[[rules]][0] metric: unknown metric "avg_corr"; expected one of avg_correlation' in message
    )
    assert "var_99" in message


def test_var_at_unconfigured_level_lists_available(tmp_path: Path) -> None:
    """var_90 without 0.90 in [risk] confidence says which levels are configured."""
    text = UNIVERSE + PORTFOLIO + rule('metric = "var_90"\nop = ">"\nthreshold = 1000')
    message = error(tmp_path, text)
    assert '[[rules]][0] metric: "var_90" needs confidence 0.90 in [risk] confidence' in message
    assert "available: var_95, var_99" in message


def test_var_at_configured_level_loads(tmp_path: Path) -> None:
    """Confidence metrics exist for every configured level, including three-decimal ones."""
    text = UNIVERSE + PORTFOLIO + "[risk]\nconfidence = [0.9, 0.975]\n"
    text += rule('metric = "var_90"\nop = ">"\nthreshold = 1000')
    text += rule('metric = "stressed_var_975"\nop = ">"\nthreshold = 1000', name="s")
    assert [r.metric for r in load(tmp_path, text).rules] == ["var_90", "stressed_var_975"]


@pytest.mark.parametrize(
    ("metric", "labels", "expected"),
    [
        (
            "avg_correlation",
            '{ symbol = "BTCUSDT" }',
            'labels.symbol: unknown label for "avg_correlation"; it takes no labels',
        ),
        (
            "price",
            '{ coin = "BTCUSDT" }',
            'labels.coin: unknown label for "price"; expected one of symbol',
        ),
        (
            "price",
            "{}",
            'labels.symbol: missing required label for "price"; expected one of symbol',
        ),
        ("price", '{ symbol = "DOGEUSDT" }', 'labels.symbol: "DOGEUSDT" is not a tracked symbol'),
        (
            "correlation",
            '{ a = "BTCUSDT" }',
            'labels.b: missing required label for "correlation"; expected one of a, b',
        ),
        (
            "correlation",
            '{ a = "BTCUSDT", b = "BTCUSDT" }',
            'labels.b: expected a symbol other than label "a"',
        ),
        (
            "var_99",
            '{ portfolio = "other" }',
            'labels.portfolio: unknown portfolio "other"; expected one of main',
        ),
        (
            "feed_staleness_seconds",
            '{ symbol = "BTCUSDT" }',
            "labels.venue: missing required label",
        ),
        ("price", "{ symbol = 1 }", "labels: expected a table of strings like"),
    ],
)
def test_bad_labels(tmp_path: Path, metric: str, labels: str, expected: str) -> None:
    """Labels must match the metric's catalogue entry and name tracked symbols or portfolios."""
    body = f'metric = "{metric}"\nop = ">"\nthreshold = 1\nlabels = {labels}'
    message = error(tmp_path, UNIVERSE + PORTFOLIO + rule(body))
    assert f"[[rules]][0] {expected}" in message


def test_portfolio_metric_needs_a_portfolio(tmp_path: Path) -> None:
    """A portfolio metric without any [[portfolios]] cannot apply to anything."""
    message = error(
        tmp_path, UNIVERSE + rule('metric = "portfolio_value"\nop = "<"\nthreshold = 1')
    )
    assert '[[rules]][0] metric: "portfolio_value" is a portfolio metric' in message


def test_labels_load_as_sorted_pairs(tmp_path: Path) -> None:
    """Labels are held as sorted (key, value) pairs; a position symbol counts as tracked."""
    body = 'metric = "correlation"\nop = "<"\nthreshold = 0.5\n'
    body += 'labels = { b = "BTCUSDT", a = "ETHUSDT" }'
    text = UNIVERSE + PORTFOLIO.replace('"ETHUSDT"', '"DOGEUSDT"') + rule(body)
    text += rule('metric = "price"\nop = ">"\nthreshold = 1\nlabels = { symbol = "DOGEUSDT" }', "p")
    config = load(tmp_path, text)
    assert config.rules[0].labels == (("a", "ETHUSDT"), ("b", "BTCUSDT"))
    assert config.rules[1].labels.get("symbol") == "DOGEUSDT"


# --- environment overrides -------------------------------------------------------------------


def test_env_overrides_scalars_lists_and_inserts_sections(tmp_path: Path) -> None:
    """RISKMON_<SECTION>__<KEY> values are read as TOML, falling back to the raw string."""
    environ = {
        "RISKMON_ESTIMATOR__HALFLIFE": "10m",
        "RISKMON_ESTIMATOR__MIN_OBSERVATIONS": "50",
        "RISKMON_RISK__CONFIDENCE": "[0.975, 0.95]",
        "riskmon_risk__distribution": "normal",
        "RISKMON_REPLAY__SNAPSHOT_INTERVAL": "5m",
        "RISKMON_SLACK_WEBHOOK": "ignored: no double underscore",
    }
    config = load(tmp_path, UNIVERSE + '[estimator]\nhalflife = "1h"\n', environ)
    assert (config.estimator.halflife, config.estimator.min_observations) == (600.0, 50)
    assert config.risk.confidence == (0.95, 0.975)
    assert config.risk.distribution == "normal"
    assert config.replay.snapshot_interval == 300.0


def test_env_defaults_to_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without an explicit environ, load_config reads os.environ."""
    monkeypatch.setenv("RISKMON_ESTIMATOR__HALFLIFE", "30m")
    assert load_config(write(tmp_path, UNIVERSE)).estimator.halflife == 1800.0


def test_bad_env_value_names_the_variable(tmp_path: Path) -> None:
    """An invalid override value names the key and the variable it came from."""
    message = error(tmp_path, UNIVERSE, {"RISKMON_ESTIMATOR__HALFLIFE": "abc"})
    assert (
        f'[estimator] halflife (from RISKMON_ESTIMATOR__HALFLIFE): {DURATION_EXPECTED}, got "abc"'
        in message
    )


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        (
            "RISKMON_ESTIMATOR__HALFLIF",
            'unknown key "halflif" in [estimator]; expected one of halflife',
        ),
        (
            "RISKMON_ESTIMATORS__HALFLIFE",
            'unknown section "estimators"; expected one of universe, estimator',
        ),
        ("RISKMON_RULES__THRESHOLD", "[[rules]] cannot be overridden (array of tables)"),
        ("RISKMON_PORTFOLIOS__NAME", "[[portfolios]] cannot be overridden"),
    ],
)
def test_unknown_env_override_names_the_variable(
    tmp_path: Path, variable: str, expected: str
) -> None:
    """Overrides of unknown sections or keys, or of arrays of tables, are errors."""
    message = error(tmp_path, UNIVERSE, {variable: "1h"})
    assert f"environment variable {variable}: {expected}" in message


# --- files -----------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    """A missing file is an error, never an empty default config."""
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="file not found") as info:
        load_config(path, environ={})
    assert str(info.value).startswith(f"{path}: ")


def test_unreadable_path(tmp_path: Path) -> None:
    """A path that cannot be read as a file names the path and the reason."""
    with pytest.raises(ConfigError, match="cannot read file") as info:
        load_config(tmp_path, environ={})
    assert str(info.value).startswith(f"{tmp_path}: ")


def test_toml_syntax_error_reports_the_line(tmp_path: Path) -> None:
    """TOML syntax errors keep the parser's line and column."""
    message = error(tmp_path, UNIVERSE + "[estimator\nhalflife = 1\n")
    assert "invalid TOML" in message
    assert "line 3" in message


def test_invalid_utf8(tmp_path: Path) -> None:
    """A file that is not UTF-8 is reported as such."""
    path = tmp_path / "bin.toml"
    path.write_bytes(b'[universe]\nsymbols = ["\xff"]\n')
    with pytest.raises(ConfigError, match="not UTF-8") as info:
        load_config(path, environ={})
    assert str(info.value).startswith(f"{path}: ")


def test_inline_sink_secret_is_refused_in_a_world_readable_file(tmp_path: Path) -> None:
    """An inline secret loads only when others cannot read the file."""
    path = tmp_path / "secret.toml"
    path.write_text(
        '[universe]\nsymbols = ["BTCUSDT"]\n'
        '[[sinks]]\nname = "pager"\ntype = "pagerduty"\nsecret = "R0UTING-KEY"\n'
    )
    path.chmod(0o644)
    with pytest.raises(
        ConfigError, match=r"\[\[sinks\]\]\[0\] secret: the file is readable"
    ) as err:
        load_config(path, environ={})
    assert "R0UTING-KEY" not in str(err.value)
    path.chmod(0o600)
    assert load_config(path, environ={}).sinks[0].secret == "R0UTING-KEY"


def test_routes_must_name_configured_sinks(tmp_path: Path) -> None:
    """A route to an unknown sink names the route and the sinks that exist."""
    path = tmp_path / "routes.toml"
    path.write_text('[universe]\nsymbols = ["BTCUSDT"]\n[[routes]]\nsinks = ["pager"]\n')
    with pytest.raises(ConfigError, match=r'\[\[routes\]\]\[0\] sinks: unknown sink "pager"'):
        load_config(path, environ={})
