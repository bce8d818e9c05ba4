"""Many workers, run safely, over a real nats-server: leases, locked state dirs, a frozen NATS,
start-up faults.

Uses the processes and helpers of :mod:`tests.integration.test_bus` (``riskmon run --role ...``
subprocesses around ``nats-server -js`` on 127.0.0.1 and the exchange simulator).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from bus.lease import decode_lease
from feeds.simulator import ExchangeSimulator
from monitor.config.loading import load_config
from tests.integration.test_bus import CONFIG, Bus, Role, check_worker, settle, until
from tests.integration.test_live_feeds import TIMEOUT_S
from tests.natsserver import BINARY, NatsServer

pytestmark = pytest.mark.skipif(
    BINARY is None, reason="nats-server is not installed (Debian package nats-server; make test)"
)

LEASE_TTL = "4s"  # twice the test config's request_timeout (2 s): the shortest allowed


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Bus]:
    async with (
        NatsServer(tmp_path / "jetstream", tmp_path / "nats-server.log") as server,
        ExchangeSimulator(speed=60.0, seed=11) as sim,
    ):
        text = textwrap.dedent(CONFIG).replace("BINANCE_URL", sim.binance_url)
        path = tmp_path / "riskmon.toml"
        path.write_text(text.replace("NATS_URL", server.url))
        bus = Bus(server, sim, path, load_config(path, environ={}), tmp_path, [])
        try:
            yield bus
        finally:
            for role in bus.roles:
                await role.kill()


def events(role: Role, name: str) -> list[dict[str, object]]:
    """The log lines of ``role`` with event ``name``."""
    lines = [json.loads(x) for x in role.log.read_text().splitlines() if x.startswith("{")]
    return [line for line in lines if line.get("event") == name]


async def exit_code(role: Role) -> int:
    assert role.proc is not None
    async with asyncio.timeout(TIMEOUT_S):
        return await role.proc.wait()


def last_line(role: Role) -> str:
    return role.log.read_text().strip().splitlines()[-1]


async def test_a_second_claimant_of_a_portfolio_waits_then_exits_2_naming_the_holder(
    setup: Bus,
) -> None:
    """Worker "a" holds portfolio a. ``--shard 0/2`` (portfolios a) is a second claimant: it
    waits ``lease_wait``, logging the holder, touches no consumer, and exits 2 with one line
    that names the holder. Once "a" stops (releasing its lease) a claimant takes over at once."""
    first = setup.role("engine-a", "--role", "engine", "--portfolios", "a")
    await first.start()
    await until(lambda: _true(events(first, "bus_leases_taken")), "the first lease", 2 * TIMEOUT_S)
    second = setup.role("shard-0", "--role", "engine", "--shard", "0/2")
    second.env = {"RISKMON_BUS__LEASE_WAIT": "2s"}
    await second.start()
    assert await exit_code(second) == 2
    line = last_line(second)
    assert line.startswith("riskmon: error: engine worker shard-0-of-2: held by another worker")
    assert "worker a (" in line
    assert events(second, "bus_lease_held")  # it waited, saying why
    assert not events(second, "bus_consumers_ready")  # and touched no consumer
    status, body = await first.get("/readyz")  # not ready: no feeds role; but still leased
    assert status == 503
    assert "leases" not in body
    third = setup.role("shard-0-again", "--role", "engine", "--shard", "0/2")
    await third.start()
    await until(lambda: _true(events(third, "bus_lease_held")), "the third to wait", TIMEOUT_S)
    assert await first.stop() == 0  # releases its lease
    await until(
        lambda: _true(events(third, "bus_leases_taken")), "the third to take over", TIMEOUT_S
    )
    assert await third.stop() == 0


async def _true(value: object) -> bool:
    return bool(value)


async def test_a_state_dir_serves_one_process(setup: Bus) -> None:
    """A second process on a state dir in use exits 2 at once, naming the holder's pid; the
    first one is not disturbed. The lock goes with the process, even after a SIGKILL."""
    first = setup.role("engine-a", "--role", "engine", "--portfolios", "a")
    await first.start()
    await until(lambda: _serving(first), "the first process to serve", 2 * TIMEOUT_S)
    second = setup.role("engine-a", "--role", "feeds")  # the same name: the same state dir
    await second.start()
    assert await exit_code(second) == 2
    assert first.proc is not None
    assert f"is in use by pid {first.proc.pid} on " in last_line(second)
    assert (await first.get("/healthz"))[0] == 200
    await first.kill()
    third = setup.role("engine-a", "--role", "engine", "--portfolios", "a")
    await third.start()
    await until(lambda: _serving(third), "a restart after SIGKILL to serve", 2 * TIMEOUT_S)
    assert await third.stop() == 0


async def _serving(role: Role) -> bool:
    return (await role.get("/healthz"))[0] == 200


async def test_a_frozen_nats_makes_both_roles_unready_and_nothing_is_lost(setup: Bus) -> None:
    """SIGSTOP nats-server for longer than the lease TTL: the feeds role's publishes fail and
    it reports so (``/readyz``, a log line); the worker can no longer renew its lease, stops
    applying, and says so. After SIGCONT both recover and the worker ends on the one-process
    figures of the stream."""
    feeds = setup.role("feeds", "--role", "feeds")
    feeds.env = {"RISKMON_BUS__PUBLISH_STALL": "2s"}
    worker = setup.role("engine-a", "--role", "engine", "--portfolios", "a")
    worker.env = {"RISKMON_BUS__LEASE_TTL": LEASE_TTL}
    for role in (feeds, worker):
        await role.start()

    async def flowing() -> bool:
        return (await worker.metrics()).get("riskmon_bus_applied_sequence", 0.0) > 1000

    await until(flowing, "ticks to reach the worker", 4 * TIMEOUT_S)
    setup.nats.freeze()
    try:

        async def unready() -> bool:
            f_status, f_body = await feeds.get("/readyz")
            w_status, w_body = await worker.get("/readyz")
            return (
                f_status == 503
                and "publishes failing" in f_body
                and w_status == 503
                and "leases not held" in w_body
            )

        await until(unready, "both roles to report the frozen bus", 3 * TIMEOUT_S)
        applied = (await worker.metrics())["riskmon_bus_applied_sequence"]
        await asyncio.sleep(1.0)
        assert (await worker.metrics())["riskmon_bus_applied_sequence"] == applied
    finally:
        setup.nats.thaw()
    assert events(feeds, "bus_publish_stalled")

    async def recovered() -> bool:
        (f_status, _), (_, w_body) = [await role.get("/readyz") for role in (feeds, worker)]
        return f_status == 200 and not any(
            reason in w_body for reason in ("leases", "disconnected", "nothing from the bus")
        )  # the worker may still be warming up (the config's 5 s blocks)

    await until(recovered, "both roles to recover", 4 * TIMEOUT_S)
    assert events(feeds, "bus_publish_recovered")
    stream, final = await settle(setup, feeds)
    assert final["dropped"] == final["unpublished"] == 0
    await check_worker(setup, worker, "a", stream)
    assert await worker.stop() == 0


async def test_status_lists_owners_and_prune_removes_orphans_after_a_reshard(
    setup: Bus,
) -> None:
    """Two shards run, then the portfolios are re-sharded into one worker: the old shards'
    consumers are orphans. ``riskmon bus status`` lists them without owner; ``bus prune``
    (dry run) names them and removes nothing; ``bus prune --yes`` removes exactly them."""
    shards = [setup.role(f"s{i}", "--role", "engine", "--shard", f"{i}/2") for i in range(2)]
    for shard in shards:
        await shard.start()
    for shard in shards:
        await until(lambda s=shard: _ready_consumers(s), f"{shard.name} consumers", TIMEOUT_S * 2)
    for shard in shards:
        assert await shard.stop() == 0
    whole = setup.role("whole", "--role", "engine", "--shard", "0/1")
    await whole.start()
    await until(lambda: _ready_consumers(whole), "the re-sharded worker", 2 * TIMEOUT_S)
    before = await consumers(setup.nats.url)
    old = {c for c in before if "-shard-0-of-2-" in c or "-shard-1-of-2-" in c}
    assert old
    code, out = await cli(setup, "bus", "status")
    assert code == 0
    assert "shard-0-of-1" in out  # an owner
    for name in old:
        assert f"{name}" in out
    code, out = await cli(setup, "bus", "prune")
    assert code == 0
    assert all(name in out for name in old)
    assert await consumers(setup.nats.url) == before  # a dry run
    code, out = await cli(setup, "bus", "prune", "--yes")
    assert code == 0
    assert await consumers(setup.nats.url) == before - old  # the running worker's are kept
    assert "removed" in out
    assert await whole.stop() == 0


async def _ready_consumers(role: Role) -> bool:
    return bool(events(role, "bus_consumers_ready"))


async def consumers(url: str) -> set[str]:
    client = await nats.connect(url)
    try:
        infos = await client.jsm().consumers_info("TEST_TICKS")
        return {info.name for info in infos}
    finally:
        await client.close()


async def cli(setup: Bus, *args: str) -> tuple[int, str]:
    """``riskmon <args> --config <the test's config>``: exit code and stdout + stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "service.cli", *args, "--config", str(setup.config_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(TIMEOUT_S):
        out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """``--role all`` (a task group at start-up) on a port another socket holds: one error line
    on stderr (besides JSON log lines), exit 2, no traceback."""
    text = textwrap.dedent(CONFIG).replace("BINANCE_URL", "ws://127.0.0.1:9")
    path = tmp_path / "riskmon.toml"
    path.write_text(text.replace("NATS_URL", "nats://127.0.0.1:9"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            **os.environ,
            "RISKMON_STATE__DIR": str(tmp_path / "state"),
            "RISKMON_SERVER__LISTEN": f"127.0.0.1:{port}",
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "service.cli", "run", "--config", str(path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        async with asyncio.timeout(TIMEOUT_S * 2):
            _, err = await proc.communicate()
    assert proc.returncode == 2
    text = err.decode()
    assert "Traceback" not in text
    errors = [line for line in text.splitlines() if not line.startswith("{")]  # not log lines
    assert len(errors) == 1, errors
    assert errors[0].startswith(f'riskmon: error: [server] listen "127.0.0.1:{port}": cannot')


def test_lease_values_name_their_holder() -> None:
    """A lease value that is not one (another tool's key) reads as None, not an error."""
    assert decode_lease(b"not json") is None
    value = decode_lease(b'{"worker":"a","owner":"h:/s","process":"h pid 1","extra":1}')
    assert value is not None
    assert value.worker == "a"
    assert value.consumers == ()


async def test_a_worker_given_another_portfolio_list_carries_its_checkpoint(setup: Bus) -> None:
    """A worker restarted on its state dir with one more portfolio does not start cold from
    the start of the stream: the estimates of the symbols it keeps and its stream cursor are
    carried (as a reload carries them); its new symbols start at the cursor."""
    feeds = setup.role("feeds", "--role", "feeds")
    worker = setup.role("engine-a", "--role", "engine", "--portfolios", "a")
    for role in (feeds, worker):
        await role.start()

    async def applied() -> bool:
        return (await worker.metrics()).get("riskmon_bus_applied_sequence", 0.0) > 2000

    await until(applied, "worker a to apply ticks", 4 * TIMEOUT_S)
    assert await worker.stop() == 0  # checkpoints at exit
    stopped_at = events(worker, "engine_worker_stop")
    assert stopped_at
    wider = setup.role("engine-a", "--role", "engine", "--portfolios", "a,b")  # same state dir
    await wider.start()
    await until(
        lambda: _true(events(wider, "checkpoint_carried")), "the checkpoint carried", TIMEOUT_S
    )
    (*_, start) = events(wider, "engine_worker_start")
    assert start["portfolios"] == ["a", "b"]
    assert int(str(start["after"])) > 2000  # resumed at the cursor, not at 0
    assert await wider.stop() == 0
