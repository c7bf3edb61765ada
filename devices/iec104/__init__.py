"""Emulated IEC 60870-5-104 RTUs (controlled stations) on c104 (lib60870-C)."""
