"""Conduits for network profiles without a normal MQTT path north: the UDP data diode
(:mod:`gateway.conduits.diode`) and the air-gap courier (:mod:`gateway.conduits.courier`)."""

from gateway.conduits.courier import (
           CourierWriter,
           ImportReport,
           import_dir,
           read_bundle,
           write_bundle,
)
from gateway.conduits.diode import DiodeReceiver, DiodeSender, run_receiver
from gateway.conduits.records import Record
from gateway.conduits.signing import keygen, load_signing_key, load_verify_key

__all__ = ["CourierWriter", "ImportReport", "import_dir", "read_bundle", "write_bundle", "DiodeReceiver",
           "DiodeSender", "run_receiver", "Record", "keygen", "load_signing_key", "load_verify_key"]
