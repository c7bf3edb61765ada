from tests.support.readings import Sink, running  # noqa: F401 - fixtures' helpers, re-exported



