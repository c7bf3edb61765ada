"""Turn a Profile into a concrete lab plan: namespaces, veth segments, addresses, routes,
static neighbours and nftables rule files. Pure data → data, so it is testable without
privileges and the holder only has to execute it.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass, field

from devices.netlab.profile import LAB_SUPERNET, Emulation, Fault, Link, Profile


@dataclass(frozen=True)
class Segment:
    """One veth pair: ``a`` side gets host .1, ``b`` side host .2."""

    zone_a: str
    zone_b: str
    subnet: str
    diode: bool = False

    def _host(self, n: int) -> str:
        return str(ipaddress.ip_network(self.subnet)[n])

    @property
    def addr_a(self) -> str:
        return self._host(1)

    @property
    def addr_b(self) -> str:
        return self._host(2)

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen

    def ifname(self, zone: str) -> str:
        """The interface in ``zone``, named after the zone it leads to (at most 15 chars)."""
        peer = self.zone_b if zone == self.zone_a else self.zone_a
        return ("to-" + peer)[:15]

    def addr(self, zone: str) -> str:
        return self.addr_a if zone == self.zone_a else self.addr_b

    def mac(self, zone: str) -> str:
        """Locally administered MAC derived from the address (needed for static neighbours)."""
        o = ipaddress.ip_address(self.addr(zone)).packed
        return "02:00:" + ":".join(f"{b:02x}" for b in o)


@dataclass(frozen=True)
class Router:
    """A hidden zone that carries an emulated link through the link emulator."""

    zone: str
    link: Link
    a_side: Segment  # zone_a = link.a, zone_b = router
    b_side: Segment  # zone_a = router, zone_b = link.b

    @property
    def emulate(self) -> Emulation:
        return self.link.emulate or Emulation()

    @property
    def faults(self) -> list[Fault]:
        return list(self.link.faults)


@dataclass
class Plan:
    zones: list[str]
    segments: list[Segment]
    routers: list[Router]
    routes: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # zone → [(subnet, via)]
    neighbours: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)  # zone → [(ip, mac, dev)]
    nft: dict[str, str] = field(default_factory=dict)  # zone → ruleset text

    def addresses(self, zone: str) -> list[str]:
        return [s.addr(zone) for s in self.segments if zone in (s.zone_a, s.zone_b)]

    def address(self, zone: str, towards: str | None = None) -> str:
        """The zone's address, preferably the one on the segment facing ``towards``.

        A zone without links (control in air-gapped) only has its own loopback."""
        if zone not in self.zones:
            raise KeyError(f"no zone {zone!r}; zones: {', '.join(self.zones)}")
        mine = [s for s in self.segments if zone in (s.zone_a, s.zone_b)]
        if not mine:
            return "127.0.0.1"
        if towards is not None:
            path = _path(self, zone, towards)
            if len(path) > 1:
                for s in mine:
                    if path[1] in (s.zone_a, s.zone_b):
                        return s.addr(zone)
        return mine[0].addr(zone)

    def path(self, src: str, dst: str) -> list[str]:
        """Zones a packet from ``src`` crosses to ``dst`` (router zones included); [] when there is no path."""
        return _path(self, src, dst)


def _auto_subnets(profile: Profile, count: int) -> list[str]:
    used = {ipaddress.ip_network(l.subnet) for l in profile.links if l.subnet}
    out: list[str] = []
    if count == 0:
        return out
    for net in LAB_SUPERNET.subnets(new_prefix=24):
        if net.network_address.packed[2] == 0 or any(net.overlaps(u) for u in used):
            continue
        out.append(str(net))
        if len(out) == count:
            return out
    raise ValueError("ran out of lab subnets in 10.200.0.0/16")


def _adjacency(plan: Plan) -> dict[str, list[tuple[str, Segment]]]:
    adj: dict[str, list[tuple[str, Segment]]] = {z: [] for z in plan.zones}
    for s in plan.segments:
        adj[s.zone_a].append((s.zone_b, s))
        adj[s.zone_b].append((s.zone_a, s))
    return adj


def _path(plan: Plan, src: str, dst: str) -> list[str]:
    adj = _adjacency(plan)
    prev: dict[str, str | None] = {src: None}
    q = deque([src])
    while q:
        z = q.popleft()
        for n, _ in adj[z]:
            if n not in prev:
                prev[n] = z
                q.append(n)
    if dst not in prev:
        return []
    out = [dst]
    while prev[out[-1]] is not None:
        out.append(prev[out[-1]])  # type: ignore[arg-type]
    return out[::-1]


def _routes(plan: Plan) -> None:
    """Static routes to every lab subnet along the shortest path — never a default route."""
    adj = _adjacency(plan)
    for zone in plan.zones:
        direct = {s.subnet for _, s in adj[zone]}
        routes = []
        for s in plan.segments:
            if s.subnet in direct:
                continue
            path = _path(plan, zone, s.zone_a)
            if len(path) < 2:
                continue
            hop = path[1]
            seg = next(seg for n, seg in adj[zone] if n == hop)
            routes.append((s.subnet, seg.addr(hop)))
        plan.routes[zone] = routes


def _nft_zone(profile: Profile, plan: Plan, zone: str) -> str:
    """Default-drop filter for a zone: only flows named in ``allow:`` may be initiated."""

    def addrs(z: str) -> str:
        return "{ " + ", ".join(plan.addresses(z)) + " }"

    inp, out = [], []
    for i, r in enumerate(profile.allow):
        ports = "{ " + ", ".join(str(p) for p in r.ports) + " }"
        if r.to == zone:
            inp.append(f"ip saddr {addrs(r.from_)} {r.proto} dport {ports} counter accept comment \"allow.{i}\"")
        if r.from_ == zone:
            out.append(f"ip daddr {addrs(r.to)} {r.proto} dport {ports} counter accept comment \"allow.{i}\"")
    ind = "\n        "
    text = f"""# gridgate netlab: zone {zone} of profile {profile.name} (generated)
table inet gridgate {{
    chain input {{
        type filter hook input priority filter; policy drop;
        iif "lo" accept
        ct state established,related accept
        {ind.join(inp) or '# nothing may initiate towards this zone'}
        counter comment "dropped"
    }}
    chain forward {{
        type filter hook forward priority filter; policy drop;
        counter comment "dropped"
    }}
    chain output {{
        type filter hook output priority filter; policy drop;
        oif "lo" accept
        ct state established,related accept
        {ind.join(out) or '# this zone initiates nothing'}
        counter comment "dropped"
    }}
}}
"""
    for s in plan.segments:
        if s.diode and s.zone_a == zone:
            dev = s.ifname(zone)
            text += f"""
# the diode: nothing at all (no IP, no ARP) comes back in on the sender's side
table netdev diode {{
    chain ingress {{
        type filter hook ingress device "{dev}" priority -500; policy drop;
        counter comment "return path dropped"
    }}
}}
"""
    return text


def build_plan(profile: Profile) -> Plan:
    """Zones, segments and filters for ``profile`` (empty for ``flat``)."""
    n_segments = sum(2 if l.emulate else 1 for l in profile.links)
    auto = iter(_auto_subnets(profile, n_segments))
    segments: list[Segment] = []
    routers: list[Router] = []
    zones = list(profile.zones)
    for link in profile.links:
        first = link.subnet or next(auto)
        if link.emulate is None:
            segments.append(Segment(link.a, link.b, first, diode=link.mode == "diode"))
            continue
        rz = f"r-{link.name}"
        zones.append(rz)
        a_side = Segment(link.a, rz, first)
        b_side = Segment(rz, link.b, next(auto))
        segments += [a_side, b_side]
        routers.append(Router(rz, link, a_side, b_side))
    plan = Plan(zones=zones, segments=segments, routers=routers)
    _routes(plan)
    router_zones = {r.zone for r in routers}
    for s in segments:
        if s.diode:
            # the sender never needs an ARP reply, the receiver never needs to ARP
            plan.neighbours.setdefault(s.zone_a, []).append((s.addr_b, s.mac(s.zone_b), s.ifname(s.zone_a)))
            plan.neighbours.setdefault(s.zone_b, []).append((s.addr_a, s.mac(s.zone_a), s.ifname(s.zone_b)))
    for z in profile.zones:
        if z not in router_zones:
            plan.nft[z] = _nft_zone(profile, plan, z)
    return plan
