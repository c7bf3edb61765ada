"""Comms faults of the emulated IED (consulted by ``Iec61850Ied``).

- ``suppress_reports``: the IED keeps its MMS association and answers reads, but its
  reporting stalls: firmware updates are written straight into the data model without
  report triggers (reads see fresh values, no dchg/qchg report goes out) and writes to
  report control blocks (GI, RptEna) are refused with access-denied, so no GI report
  either. Integrity reports still follow the RCB's IntgPd (60 s in the generated model).
- ``refuse_add_cause``: every operate is answered FAILED with this IEC 61850-7-2 AddCause.
- association abort is an action, not a state: ``abort_connections`` shuts down every
  accepted MMS socket of the IED (the listener stays, new associations are accepted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from devices.netguard import abort_connections  # noqa: F401 - the IED's association abort


@dataclass(frozen=True)
class IedFaults:
    """What the IED does wrong right now (replaced as a whole by the fault engine)."""

    suppress_reports: bool = False
    refuse_add_cause: int | None = None




def merge(faults: list[Any]) -> IedFaults:
    """Merge one IED's comms faults; of several control refusals the latest injected wins."""
    causes = [f.add_cause for f in faults if f.kind == "control_refused"]
    return IedFaults(suppress_reports=any(f.kind == "report_suppression" for f in faults),
                     refuse_add_cause=causes[-1] if causes else None)
