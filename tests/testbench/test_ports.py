"""Bench instances run side by side (a demo left up, the shared test bench, the setup bench):
no two may bind the same port, counting the ports weed mini derives from its S3 port."""

from __future__ import annotations

import dataclasses
from itertools import combinations

from testbench.asterisk import PRESETS, Ports
from testbench.s3 import weed_ports


def _bound(ports: Ports) -> set[int]:
    taken: set[int] = set(weed_ports(ports.s3).values())
    taken |= set(range(ports.rtp_start, ports.rtp_end + 1))
    taken |= set(range(ports.caller_media[0], ports.caller_media[1] + 1))
    taken |= set(range(ports.agent_media, ports.agent_media + 100))  # testbench/bench.py phones
    taken |= set(range(ports.trunk, ports.trunk + 21))  # callers at trunk+10 and trunk+20
    for field in dataclasses.fields(ports):
        value = getattr(ports, field.name)
        if isinstance(value, int):
            taken.add(value)
    return taken


def test_no_two_presets_share_a_port() -> None:
    for (a, pa), (b, pb) in combinations(PRESETS.items(), 2):
        shared = _bound(pa) & _bound(pb)
        assert not shared, (a, b, sorted(shared)[:10])


def test_weed_ports_include_each_grpc_twin() -> None:
    ports = weed_ports(28333)
    assert ports["master"] == 29333 and ports["master.grpc"] == 39333
    assert len(set(ports.values())) == len(ports)
