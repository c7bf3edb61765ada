"""How a point's `kind: plant` signal becomes the firmware's: the unit scale from its measurement."""

from __future__ import annotations

_MULTIPLIER = {"none": 1.0, "k": 1e-3, "M": 1e-6}
_SCALED = ("P", "Q", "S", "I", "V", "V_lv", "I_lv", "P_loss")


def firmware_signal(p):
    """The point's signal, a plant signal with ``scale`` filled from the measurement multiplier
    (the solver works in W, var, VA, A, V; a point measured in kW gets 0.001)."""
    sig = p.signal
    if sig is None or sig.kind != "plant" or sig.scale is not None or sig.quantity not in _SCALED:
        return sig
    return sig.model_copy(update={"scale": _MULTIPLIER[p.measurement.multiplier]})
