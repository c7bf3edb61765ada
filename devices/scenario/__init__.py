"""Fault scripting: scenario files (model, loading), the timeline on the scenario clock,
the fault engine, expectations, runner and report. See devices/scenario/README.md."""
