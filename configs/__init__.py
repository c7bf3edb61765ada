"""The shipped example site, network profiles and scenarios: data only, installed as the package data
``gridgate_configs`` (setup.py) so an installed gridgate finds them by name (gateway/shipped.py)."""
