"""Where picture bytes live. `make_storage(settings)` returns the backend that config names.

Backends are synchronous (file work runs in the executor) and implement storage.base.Storage.
"""
from storage.local import LocalStorage

BACKENDS = {"local": LocalStorage}


def make_storage(settings):
    return BACKENDS[settings["storage"]["backend"]](settings)
