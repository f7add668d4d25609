"""The local-disk backend: finished files under storage.root (served at /statics/), chunks under staging."""
import contextlib
import os
from pathlib import Path

URL_PREFIX = "statics/"


class LocalStorage:
    def __init__(self, settings):
        self.root = Path(settings["storage"]["root"]).resolve()
        self.staging = Path(settings["storage"]["staging"]).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.staging.mkdir(parents=True, exist_ok=True)

    def path_for(self, url):
        """The file behind a picture URL ('statics/...'); None if the URL points outside the root."""
        if not url.startswith(URL_PREFIX):
            return None
        path = (self.root / url[len(URL_PREFIX):]).resolve()
        return path if path.is_relative_to(self.root) else None

    def delete(self, url):
        """Remove a finished picture and its thumbnail; a file already gone is not an error."""
        path = self.path_for(url)
        if path is None:
            return
        for candidate in (path, thumbnail_path(path)):
            with contextlib.suppress(FileNotFoundError):
                os.remove(candidate)


def thumbnail_path(path):
    """The thumbnail written beside a picture: NAME_thumb.EXT."""
    return path.with_name(f"{path.stem}_thumb{path.suffix}")
