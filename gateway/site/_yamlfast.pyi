"""gateway/site/_yamlfast.c: a site file's YAML text -> Python data from libyaml's events."""

def load(text: str | bytes, /) -> object:
    """The data, or ``NotImplemented`` where PyYAML must decide (tags, aliases, errors, ...)."""
