"""An independent reader of CGMES RDF/XML for the tests: rdflib (the product writes and reads with lxml)."""

from __future__ import annotations

from collections import defaultdict

from rdflib import RDF, Graph, Namespace, URIRef

CIM = Namespace("http://iec.ch/TC57/CIM100#")
BASE = "urn:gridgate-test:model"


def graph(*docs: bytes) -> Graph:
    """One graph of several profile documents; ``rdf:ID="_x"`` and ``#_x`` resolve against one base."""
    g = Graph()
    for d in docs:
        g.parse(data=d, format="xml", publicID=BASE)
    return g


def typed(g: Graph, cls: str) -> list[URIRef]:
    return list(g.subjects(RDF.type, CIM[cls]))


def one(g: Graph, s, prop: str):
    vals = list(g.objects(s, CIM[prop]))
    assert len(vals) == 1, f"{s} has {len(vals)} {prop}"
    return vals[0]


def lit(g: Graph, s, prop: str) -> str:
    return str(one(g, s, prop))


def enum(g: Graph, s, prop: str) -> str:
    return str(one(g, s, prop)).rsplit("#", 1)[-1].split(".", 1)[1]


def mrid(g: Graph, s) -> str:
    return lit(g, s, "IdentifiedObject.mRID")


def adjacency(g: Graph, open_: set[str] = frozenset()) -> dict[str, set[str]]:
    """Equipment and nodes as a graph (by mRID): equipment—terminal—node edges; switches in ``open_`` cut."""
    adj: dict[str, set[str]] = defaultdict(set)
    for t in typed(g, "Terminal"):
        eq = mrid(g, one(g, t, "Terminal.ConductingEquipment"))
        node = mrid(g, one(g, t, "Terminal.ConnectivityNode"))
        if eq in open_:
            adj[eq]  # noqa: B018 - the open switch is a dead end: it keeps no edges
            continue
        adj[eq].add(node)
        adj[node].add(eq)
    return adj


def reachable(adj: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for n in adj[todo.pop()]:
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return seen
