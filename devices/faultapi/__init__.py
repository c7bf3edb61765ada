"""The live fault API: a loopback HTTP control channel into a running emulator (server)
and the client the ``gridgate fault`` commands use."""
