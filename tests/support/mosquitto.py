"""Tests use the packaged Mosquitto runner (devices/mosquitto.py), which labs and benchmarks share."""

from devices.mosquitto import Mosquitto, free_port, mosquitto_binary

__all__ = ["Mosquitto", "free_port", "mosquitto_binary"]
