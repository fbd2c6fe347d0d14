"""Load agents over locust's own master/worker protocol (imported by the locustfile only).

An agent is one locust worker process started on a load host by ``bench agent``; it
shares no file system with the harness. Everything between the two goes over locust's
message channel (``runner.send_message`` / ``runner.register_message``, msgpack over
ZeroMQ), in these custom messages:

================  ==============  =====================================================
message           direction       data
================  ==============  =====================================================
``bench_hello``   agent > master  ``{host, address, pid, cpus}`` once, after connecting
``bench_ping``    master > agent  ``{t0}``: the master's wall clock (unix s)
``bench_pong``    agent > master  ``{t0, t1, t2}``: t1 receipt, t2 reply, agent's clock
``bench_clock``   master > agent  ``{index, offset_s, uncertainty_s}`` (see below)
``bench_level``   master > agent  the level: the spec (request, expected answer,
                                  options), ``users``, ``start_spread_s``, ``seq``
``bench_records`` agent > master  ``{seq, data}``: request records (the locustfile's
                                  CSV lines), every :data:`SHIP_EVERY_S` and at the end
``bench_end``     master > agent  ``{seq}``: the level is over, send what is left
``bench_meta``    agent > master  ``{seq, meta}``: the agent's meta for the level (lag
                                  slices, errors, CPU warning, CPU time samples)
``bench_bye``     agent > master  ``{}``: the agent is quitting (Ctrl-C, SIGTERM)
================  ==============  =====================================================

ZeroMQ keeps the order of one connection's messages, so an agent's last records reach
the master before its meta, and a level's settings before locust's own ``spawn``.

Clocks. Latency is measured by each agent on its own monotonic clock (locust times a
request with ``time.perf_counter``); only the *placement* of a record in time (its start,
unix s) needs the master's clock. At connect the master sends :data:`PINGS` pings and
keeps the one with the shortest round trip (NTP's clock filter, RFC 5905 section 10):
offset = ((t1 - t0) + (t2 - t3)) / 2, the agent's clock minus the master's, known to
within +- half that round trip (the uncertainty), whatever the path's asymmetry. The
agent then writes every time in the master's clock (its own minus the offset), so the
harness's measurement window (master times) applies to every agent's records alike.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

import gevent

#: Records are shipped to the master this often during a level (s): the harness's
#: steady-state detector reads them live (harness.steady.CHECK_EVERY_S is 0.5 s).
SHIP_EVERY_S = 0.25
#: Clock pings per agent at connect, and the pause between them (s).
PINGS = 8
PING_GAP_S = 0.02
#: After the level ends, how long the master waits for each agent's meta (s).
META_WAIT_S = 8.0


class Shipper:
    """The agent's records "file": lines written to it go to the master in batches.

    Same interface as the open file the locustfile writes locally (``write``,
    ``flush``, ``close``, ``closed``); each batch is one ``bench_records`` message.
    """

    def __init__(self, runner: Any, seq: int) -> None:
        self.runner = runner
        self.seq = seq
        self.closed = False
        self._lines: list[str] = []
        self.shipped_bytes = 0
        self.batches = 0
        gevent.spawn(self._forever)

    def write(self, line: str) -> None:
        self._lines.append(line)

    def flush(self) -> None:
        if not self._lines:
            return
        data = "".join(self._lines).encode("ascii")
        self._lines = []
        self.shipped_bytes += len(data)
        self.batches += 1
        self.runner.send_message("bench_records", {"seq": self.seq, "data": data})

    def close(self) -> None:
        if not self.closed:
            self.flush()
            self.closed = True

    def _forever(self) -> None:
        while not self.closed:
            gevent.sleep(SHIP_EVERY_S)
            if not self.closed:
                self.flush()


def local_address(master_host: str, master_port: int) -> str:
    """The address this host reaches the master from (a UDP ``connect`` picks the route
    and sends nothing)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((master_host, master_port))
            return str(s.getsockname()[0])
    except OSError:
        return ""


def hello(runner: Any) -> dict[str, Any]:
    """What an agent tells the master about itself."""
    return {"host": socket.gethostname(),
            "address": local_address(runner.master_host, runner.master_port),
            "pid": os.getpid(), "cpus": sorted(os.sched_getaffinity(0))}


def best_offset(samples: list[tuple[float, float, float, float]]) -> tuple[float, float, float]:
    """(offset s, uncertainty s, round trip s) from (t0, t1, t2, t3) ping samples: the
    sample with the shortest round trip (RFC 5905: offset ((t1-t0)+(t2-t3))/2, round
    trip (t3-t0)-(t2-t1), the true offset within +- round trip / 2)."""
    def rtt(s: tuple[float, float, float, float]) -> float:
        return (s[3] - s[0]) - (s[2] - s[1])

    t0, t1, t2, t3 = min(samples, key=rtt)
    delay = max(0.0, (t3 - t0) - (t2 - t1))
    return ((t1 - t0) + (t2 - t3)) / 2.0, delay / 2.0, delay


class Registry:
    """The master's view of its agents: who connected, their clocks, their records.

    ``path`` (a JSON file the harness reads) lists the agents as they connect and
    their clocks once measured: ``[{index, client_id, host, address, pid, cpus,
    offset_ms, uncertainty_ms, rtt_ms}]``.
    """

    def __init__(self, runner: Any, path: str) -> None:
        self.runner = runner
        self.path = path
        self.agents: dict[str, dict[str, Any]] = {}
        self._pongs: dict[str, list[tuple[float, float, float, float]]] = {}
        self.records_dir = ""
        self.seq = -1
        self._files: dict[str, Any] = {}
        self.metas: dict[str, dict[str, Any]] = {}
        self.in_level: dict[str, dict[str, Any]] = {}
        self.lost: dict[str, str] = {}
        #: Seconds from asking the agents for their last records to having them all.
        self.end_s = 0.0
        #: Agents that said they quit (``bench_bye``).
        self.gone: set[str] = set()
        for kind in ("hello", "pong", "records", "meta", "bye"):
            runner.register_message(f"bench_{kind}", getattr(self, f"_on_{kind}"))
        self._save()

    def _save(self) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(sorted(self.agents.values(), key=lambda a: a["index"]), f)
        os.replace(tmp, self.path)

    def _on_hello(self, environment: Any, msg: Any, **_kw: Any) -> None:
        index = max((a["index"] for a in self.agents.values()), default=0) + 1
        self.agents[msg.node_id] = {"index": index, "client_id": msg.node_id, **msg.data}
        self._pongs[msg.node_id] = []
        self._save()
        gevent.spawn(self._ping, msg.node_id)

    def _ping(self, client_id: str) -> None:
        for _ in range(PINGS):
            self.runner.send_message("bench_ping", {"t0": time.time()}, client_id)
            gevent.sleep(PING_GAP_S)
        deadline = time.time() + 5.0
        while len(self._pongs[client_id]) < PINGS and time.time() < deadline:
            gevent.sleep(PING_GAP_S)
        if not self._pongs[client_id]:
            return
        offset, uncertainty, rtt = best_offset(self._pongs[client_id])
        agent = self.agents[client_id]
        agent.update(offset_ms=offset * 1e3, uncertainty_ms=uncertainty * 1e3, rtt_ms=rtt * 1e3,
                     pings=len(self._pongs[client_id]))
        self.runner.send_message("bench_clock", {"index": agent["index"], "offset_s": offset,
                                                 "uncertainty_s": uncertainty}, client_id)
        self._save()

    def _on_bye(self, environment: Any, msg: Any, **_kw: Any) -> None:
        self.gone.add(msg.node_id)

    def _on_pong(self, environment: Any, msg: Any, **_kw: Any) -> None:
        d = msg.data
        self._pongs.setdefault(msg.node_id, []).append((d["t0"], d["t1"], d["t2"], time.time()))

    def ready(self) -> list[str]:
        """Client ids of the connected agents whose clock is measured."""
        live = {c.id for c in self.runner.clients.all
                if c.state != "missing" and c.id not in self.gone}
        return [cid for cid, a in self.agents.items() if cid in live and "offset_ms" in a]

    def begin(self, level: dict[str, Any], spec: dict[str, Any]) -> None:
        """Send the level to every ready agent (before locust's own spawn messages)."""
        self.close_files()
        self.seq += 1
        self.records_dir = level["records_dir"]
        self.metas = {}
        self.lost = {}
        self.in_level = {cid: self.agents[cid] for cid in self.ready()}
        shared = {k: v for k, v in spec.items()
                  if k not in ("control_path", "records_dir", "agents_path", "expected_body_bytes")}
        for cid in self.in_level:
            self.runner.send_message("bench_level", {**shared, "seq": self.seq}, cid)

    def _file(self, client_id: str) -> Any:
        f = self._files.get(client_id)
        if f is None:
            os.makedirs(self.records_dir, exist_ok=True)
            index = self.agents[client_id]["index"]
            f = open(os.path.join(self.records_dir, f"agent-{index}.csv"), "ab")  # noqa: SIM115
            self._files[client_id] = f
        return f

    def _on_records(self, environment: Any, msg: Any, **_kw: Any) -> None:
        if msg.data.get("seq") != self.seq or msg.node_id not in self.in_level:
            return  # a late batch of an earlier level
        f = self._file(msg.node_id)
        f.write(msg.data["data"])
        f.flush()  # the harness's steady-state detector reads it live

    def _on_meta(self, environment: Any, msg: Any, **_kw: Any) -> None:
        if msg.data.get("seq") == self.seq and msg.node_id in self.in_level:
            self.metas[msg.node_id] = msg.data["meta"]

    def watch(self) -> None:
        """Note agents of the running level that quit or went missing (call often).

        Not being among locust's clients is no sign: a worker leaves them from its
        ``client_stopped`` to its ``client_ready`` (its users' stop timeout); one that
        dies then is caught by :meth:`end` (no results)."""
        present = {c.id: c.state for c in self.runner.clients.all}
        for cid, agent in self.in_level.items():
            missing = present.get(cid) == "missing"
            if cid not in self.lost and (missing or cid in self.gone):
                how = "stopped answering locust's heartbeats" if missing else "quit"
                self.lost[cid] = (f"agent {agent['index']} ({agent.get('address') or '?'} "
                                  f"pid {agent.get('pid')}) {how} during the level")

    def end(self) -> None:
        """Ask every agent of the level for what is left; write each agent's meta file
        (``agent-<index>.meta.json``), waiting at most :data:`META_WAIT_S`."""
        t0 = time.time()
        for cid in self.in_level:
            self.runner.send_message("bench_end", {"seq": self.seq}, cid)
        deadline = t0 + META_WAIT_S
        while time.time() < deadline:
            self.watch()
            if all(cid in self.metas or cid in self.lost for cid in self.in_level):
                break
            gevent.sleep(0.05)
        for cid, agent in self.in_level.items():
            if cid not in self.metas and cid not in self.lost:
                self.lost[cid] = (f"agent {agent['index']} ({agent.get('address') or '?'} pid "
                                  f"{agent.get('pid')}) sent no results within {META_WAIT_S:g} s "
                                  "of the level's end")
        self.close_files()
        self.end_s = time.time() - t0
        for cid, meta in self.metas.items():
            info = {k: v for k, v in self.agents[cid].items()}
            final = os.path.join(self.records_dir, f"agent-{info['index']}.meta.json")
            with open(final + ".tmp", "w", encoding="utf-8") as f:
                json.dump({**meta, "role": "worker", "agent": info}, f)
            os.replace(final + ".tmp", final)

    def close_files(self) -> None:
        for f in self._files.values():
            f.close()
        self._files = {}

    def summary(self) -> dict[str, Any]:
        """For the master's meta: the level's agents and those lost."""
        return {"agents": [self.in_level[c]["index"] for c in self.in_level],
                "agents_lost": sorted(self.lost.values()),
                "agents_end_s": self.end_s}
