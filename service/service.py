"""The long-running service around the daemon: HTTP, signals, checkpoints, reloads, systemd.

- SIGTERM / SIGINT: stop feeds, flush, write a checkpoint, exit within 10 s. Signals and HTTP are
  served by the event loop, which never runs the engine's computation (see service.daemon), so
  they are answered in every state; the shutdown waits for at most the engine step under way.
- SIGHUP: reload the config file. A valid one is applied as a whole or not at all: the daemon
  is replaced atomically, carrying the state of the symbols, pairs and rule instances the two
  configs share; ``[server]`` moves to its new address, auth and TLS (the new listener is up
  before the old one stops: :mod:`service.listener`); ``[[sinks]]``, ``[[routes]]`` and
  ``[alerts]`` timers are swapped in the running dispatcher, which keeps its outbox. An
  invalid file, a change only a restart can make (:mod:`service.reload`), a secret that
  cannot be read or an address that cannot be bound is logged with the reason, counted in
  ``riskmon_config_reloads_total{result="failure"}``, and the old config keeps running.
- Checkpoints: every ``[state] checkpoint_interval`` and at shutdown, atomically, into
  ``[state] dir``; at start a checkpoint is restored. One of another configuration (a rule or
  a symbol added) carries what the two share, as SIGHUP does, and logs what was carried; a
  corrupt one is logged and the daemon starts cold. Rule states are then aligned with what the
  outbox says receivers were told (:mod:`service.alert_recovery`), so a checkpoint older than
  the last delivery never re-notifies, and firing alerts whose rule instance left the
  configuration are resolved.
- ``[state] dir`` is locked by the process (:mod:`service.statelock`): a second process
  started on it stops at once with a one-line error.
- systemd: READY=1 once serving, WATCHDOG=1 while the engine loop turns, RELOADING=1 on SIGHUP.
- Alerts: every transition goes through the durable outbox to the routed sinks; the
  dispatcher outlives reloads and gets ``ALERT_FLUSH_S`` to deliver what is due at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from alerts import notify
from alerts.dispatcher import Dispatcher
from monitor.config.book import AccountConfig
from monitor.config.loading import load_config
from monitor.config.schema import Config, ServerConfig
from monitor.errors import ConfigError, RiskmonError
from monitor.model import AlertEvent
from monitor.risk.snapshot import RiskSnapshot
from service.alert_recovery import align_rules, orphans
from service.alerting import build_delivery, build_dispatcher
from service.checkpoint import Checkpoint, Fingerprint, read_checkpoint, write_checkpoint
from service.daemon import AlertListener, Daemon
from service.http import build_app
from service.http_log import HttpErrorLog
from service.listener import HttpListener
from service.logs import redact_also
from service.looplag import LoopLag
from service.metrics import RiskCollector, ServiceStats, make_registry
from service.positions_store import (
    POSITIONS_FILE,
    clear_positions,
    load_positions,
    save_positions,
)
from service.reload import changed_sections, refused_changes
from service.statelock import StateDirLock
from service.systemd import Notifier

log = structlog.get_logger("riskmon.service")

CHECKPOINT_FILE = "checkpoint.npz"
ALERT_FLUSH_S = 2.0
SHUTDOWN_BUDGET_S = 8.0


@dataclass(slots=True)
class Service:
    """Owns the current daemon and everything that outlives a config reload.

    Args:
        config: the validated configuration.
        config_path: file to re-read on SIGHUP (None: reloads are refused).
        listeners: receive every alert event.
        notifier: systemd notifications (inert without NOTIFY_SOCKET).
        wall: the wall clock daemons check venue times and the event clock against (the demo
            passes the simulator's faster clock).
        fixed_sections: sections a reload may not change besides :data:`RESTART_ONLY`
            (``"bus"`` for a split role).
        role: the role run (shown to a second process claiming the state dir).
    """

    config: Config
    config_path: Path | None = None
    listeners: Sequence[AlertListener] = ()
    notifier: Notifier = field(default_factory=Notifier)
    daemon_factory: Callable[..., Daemon] = Daemon
    collectors: Sequence[Collector] = ()
    stats: ServiceStats = field(default_factory=ServiceStats)
    wall: Callable[[], float] = time.time
    fixed_sections: frozenset[str] = frozenset()
    role: str = "all"
    loop_lag: LoopLag = field(default_factory=LoopLag)
    http_log: HttpErrorLog = field(default_factory=HttpErrorLog)
    http: HttpListener | None = field(default=None, init=False)
    daemon: Daemon | None = field(default=None, init=False)
    dispatcher: Dispatcher | None = field(default=None, init=False)
    port: int | None = field(default=None, init=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _reload: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    @property
    def checkpoint_path(self) -> Path:
        """Where checkpoints are written."""
        return Path(self.config.state.dir) / CHECKPOINT_FILE

    def request_stop(self) -> None:
        """Ask the service to shut down (signal handlers and tests)."""
        self._stop.set()

    def request_reload(self) -> None:
        """Ask the service to reload its config file."""
        self._reload.set()

    async def run(self, duration_s: float | None = None) -> None:
        """Serve until stopped (signal, ``request_stop`` or ``duration_s``).

        Raises:
            ConfigError: the HTTP secret or TLS files cannot be read, or ``[server] listen``
                cannot be bound.
            StateDirLockedError: another process holds ``[state] dir``.
        """
        with StateDirLock(Path(self.config.state.dir), self.role):
            collector = RiskCollector(lambda: self.daemon, self.stats, time.monotonic, time.time)
            registry, latency = make_registry(collector)
            for extra in (*self.collectors, self.loop_lag, self.http_log):
                registry.register(extra)
            self.http = HttpListener(functools.partial(self._app, registry), self.http_log)
            await self.http.start(self.config.server)
            self.port = self.http.port
            try:
                with self._signals():
                    await self._serve(latency.observe, duration_s)
            finally:
                await self.http.close()

    def _app(
        self, registry: CollectorRegistry, server: ServerConfig, secret: str | None
    ) -> web.Application:
        return build_app(
            lambda: self.daemon, registry, server, secret, self, self.http_log.client_error
        )

    async def _serve(self, observe: Callable[[float], None], duration_s: float | None) -> None:
        self.dispatcher = build_dispatcher(self.config)
        self.stats.dispatcher = self.dispatcher
        try:
            async with asyncio.TaskGroup() as group:
                delivery = group.create_task(self.dispatcher.run())
                lag = group.create_task(self.loop_lag.run())
                await self._serve_daemons(observe, duration_s)
                delivery.cancel()
                lag.cancel()
            await self.dispatcher.flush(ALERT_FLUSH_S)
        finally:
            self.dispatcher.close()

    async def _serve_daemons(
        self, observe: Callable[[float], None], duration_s: float | None
    ) -> None:
        self.daemon = self._new_daemon(self.config, observe)
        self._restore_at_start(self.daemon)
        self._recover_alerts(self.daemon)
        if duration_s is not None:
            asyncio.get_running_loop().call_later(duration_s, self._stop.set)
        while not self._stop.is_set():
            daemon_stop = asyncio.Event()
            async with asyncio.TaskGroup() as group:
                group.create_task(self.daemon.run(daemon_stop))
                group.create_task(self._checkpoints(daemon_stop))
                group.create_task(self._watchdog(daemon_stop))
                self.notifier.ready()
                replacement = await self._until_stop_or_valid_reload(observe)
                daemon_stop.set()
            if replacement is not None:
                self.daemon = replacement
        await self._write_checkpoint(self.daemon)
        log.info("service_stopped", ticks=self.daemon.engine.ticks)

    async def _until_stop_or_valid_reload(self, observe: Callable[[float], None]) -> Daemon | None:
        """Wait; return the replacement daemon of a valid reload, or None to stop."""
        while True:
            if await self._wait_stop_or_reload() == "stop":
                self.notifier.stopping()
                return None
            replacement = await self._reloaded(observe)
            if replacement is not None:
                return replacement
            self.notifier.ready()  # the old config keeps running

    async def _wait_stop_or_reload(self) -> str:
        stop = asyncio.ensure_future(self._stop.wait())
        reload = asyncio.ensure_future(self._reload.wait())
        try:
            await asyncio.wait({stop, reload}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            reload.cancel()
        if self._stop.is_set():
            return "stop"
        self._reload.clear()
        return "reload"

    def _new_daemon(self, config: Config, observe: Callable[[float], None]) -> Daemon:
        daemon = self.daemon_factory(
            config,
            listeners=self.listeners,
            on_step=observe,
            on_alerts=self._notify,
            wall=self.wall,
        )
        path = Path(config.state.dir) / POSITIONS_FILE
        try:
            posted = load_positions(path)
            if posted is not None:
                daemon.replace_accounts(posted)
        except ConfigError as exc:
            aside = path.with_suffix(".rejected.json")
            path.replace(aside)
            log.error("posted_positions_rejected", path=str(aside), error=str(exc))
        return daemon

    @property
    def positions_path(self) -> Path:
        """Where accounts posted through the API are kept."""
        return Path(self.config.state.dir) / POSITIONS_FILE

    async def replace(self, accounts: tuple[AccountConfig, ...]) -> None:
        """``POST /api/v1/positions``: swap the accounts, then keep them for restarts.

        The swap runs between two engine steps (:meth:`Daemon.call`).

        Raises:
            ConfigError: invalid accounts, or the file could not be written; nothing changes.
        """
        daemon = self.daemon
        assert daemon is not None
        previous = daemon.engine.accounts
        await daemon.call(daemon.replace_accounts, accounts)
        try:
            save_positions(self.positions_path, accounts)
        except OSError as exc:
            await daemon.call(daemon.replace_accounts, previous)
            raise ConfigError(f"{self.positions_path}: cannot write it ({exc})") from None

    async def reset(self) -> None:
        """``DELETE /api/v1/positions``: back to the config's accounts."""
        daemon = self.daemon
        assert daemon is not None
        await daemon.call(daemon.replace_accounts, self.config.accounts)
        clear_positions(self.positions_path)

    def _notify(self, events: list[AlertEvent], snap: RiskSnapshot) -> None:
        """Hand a snapshot's alert events to the durable dispatcher (quick, no I/O wait)."""
        if self.dispatcher is None or not events:
            return
        rules = {r.name: r for r in self.config.rules}
        url = self.config.server.dashboard_url
        self.dispatcher.submit([notify.build(e, rules, snap, url) for e in events])

    async def _reloaded(self, observe: Callable[[float], None]) -> Daemon | None:
        """The daemon of the re-read config with everything else switched over, or None
        (logged, counted, nothing changed) when the reload cannot be applied in full."""
        self.notifier.reloading()
        current, http, dispatcher = self.daemon, self.http, self.dispatcher
        assert current is not None
        assert http is not None
        assert dispatcher is not None
        report = None
        try:
            config = self._reread()
            delivery = build_delivery(config)  # reads the sinks' secrets
            fresh = self._new_daemon(config, observe)
            if fresh.stateful:  # the new daemon does not run yet: the old one's state is read
                report = fresh.carry_state(await current.call(current.capture_state))
            generation = await http.prepare(config.server)  # serving next to the old one
        except RiskmonError as exc:
            self.stats.reloads_failed += 1
            self.stats.last_reload_ok = False
            log.error("config_reload_rejected", path=str(self.config_path), error=str(exc))
            return None
        # Nothing below can fail: the reload is applied in full.
        self._retire_orphans(fresh)  # resolved through the sinks that were told of them
        await dispatcher.reconfigure(delivery)
        await http.commit(generation)
        redact_also(delivery.redactor)  # new sink secrets and tokens, never in a log line
        previous, self.config, self.port = self.config, config, http.port
        self.stats.reloads_ok += 1
        self.stats.last_reload_ok = True
        log.info(
            "config_reloaded", path=str(self.config_path),
            changed=changed_sections(previous, config), state=str(report),
        )  # fmt: skip
        return fresh

    def _reread(self) -> Config:
        """The config file read again, if every change it makes can be applied live.

        Raises:
            RiskmonError: no file, an invalid one, or a change that needs a restart.
        """
        if self.config_path is None:
            raise RiskmonError("no config file to reload")
        config = load_config(self.config_path)
        refused = refused_changes(self.config, config, self.fixed_sections)
        if refused:
            raise RiskmonError(
                f"{self.config_path}: only a restart can change " + "; ".join(refused)
            )
        return config

    def _restore_at_start(self, daemon: Daemon) -> None:
        path = self.checkpoint_path
        if not daemon.stateful:
            return
        if not path.exists():
            log.info("checkpoint_absent", path=str(path))
            return
        try:
            checkpoint = read_checkpoint(path)
            changed = checkpoint.fingerprint.differences(Fingerprint.of(daemon.config))
            if changed:  # a bus worker carries its cursor too: its new symbols start there
                self._carry_at_start(daemon, checkpoint, changed)
            else:
                daemon.restore_state(checkpoint)
                log.info("checkpoint_restored", path=str(path), ticks=daemon.engine.ticks)
        except RiskmonError as exc:
            log.error("checkpoint_unusable_starting_cold", path=str(path), error=str(exc))
            return
        self.stats.restored = True

    def _carry_at_start(self, daemon: Daemon, checkpoint: Checkpoint, changed: list[str]) -> None:
        """A checkpoint of another configuration: carry what fits, as SIGHUP does."""
        before = {state.key for state in daemon.rules.export_state()}
        report = daemon.carry_state(checkpoint)
        cold = sorted(f"{rule}{dict(labels)}" for rule, labels in before - set(report.rules_kept))
        log.info(
            "checkpoint_carried", path=str(self.checkpoint_path), changed=changed,
            carried=str(report), rule_instances_cold=cold[:20], rule_instances_cold_count=len(cold),
        )  # fmt: skip

    def _recover_alerts(self, daemon: Daemon) -> None:
        """Align rule states with what receivers were told, then retire orphaned alerts."""
        if self.dispatcher is None or not daemon.stateful:
            return
        if not daemon.replays_ticks:
            aligned = align_rules(daemon.rules, self.dispatcher.outbox.alerts())
            if aligned:
                rules = sorted({rule for rule, _ in aligned})
                log.info("rule_states_from_outbox", instances=len(aligned), rules=rules)
        self._retire_orphans(daemon)

    def _retire_orphans(self, daemon: Daemon) -> None:
        """Resolve firing alerts whose rule instance ``daemon`` no longer evaluates."""
        if self.dispatcher is None or not daemon.stateful:
            return
        gone = orphans(daemon.rules, self.dispatcher.outbox.alerts())
        if not gone:
            return
        now = time.time()
        self.dispatcher.submit(
            notify.retirement(r.firing, max(now, r.episode.started))
            for r in gone
            if r.firing is not None
        )
        log.warning("alerts_retired", alerts=len(gone), rules=sorted({r.rule for r in gone}))

    async def _write_checkpoint(self, daemon: Daemon) -> None:
        """Capture between two engine steps, then write the file off the event loop."""
        if not daemon.stateful:
            return
        try:
            checkpoint = await daemon.call(daemon.capture_state)
            self.checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(write_checkpoint, self.checkpoint_path, checkpoint)
        except (OSError, RiskmonError) as exc:
            self.stats.checkpoint_failures += 1
            log.error("checkpoint_failed", path=str(self.checkpoint_path), error=str(exc))
            return
        self.stats.checkpoint_last_success = time.time()

    async def _checkpoints(self, stop: asyncio.Event) -> None:
        interval = self.config.state.checkpoint_interval
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await stop.wait()
            if not stop.is_set() and self.daemon is not None:
                await self._write_checkpoint(self.daemon)

    async def _watchdog(self, stop: asyncio.Event) -> None:
        interval = self.notifier.watchdog_interval_s
        if interval is None:
            return
        while not stop.is_set():
            if self.daemon is not None and self.daemon.loop_alive(time.monotonic()):
                self.notifier.watchdog()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await stop.wait()

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        handlers = {
            signal.SIGTERM: self.request_stop,
            signal.SIGINT: self.request_stop,
            signal.SIGHUP: self.request_reload,
        }
        for sig, handler in handlers.items():
            loop.add_signal_handler(sig, handler)
        try:
            yield
        finally:
            for sig in handlers:
                loop.remove_signal_handler(sig)
