"""Opening image files with Pillow's own ``Image.open``, whatever a library did to it."""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image

_OPEN_AT_IMPORT = Image.open  # Pillow's, unless a wrapper was installed before this import


def pillow_open() -> Callable[..., Image.Image]:
    """Pillow's own ``PIL.Image.open``, even after a library replaced it.

    ultralytics replaces ``PIL.Image.open`` when it is imported: for a file Pillow cannot
    identify, its wrapper tries to install and import the optional ``pi_heif`` plugin and open the
    file again, so a corrupt ``.png`` is reported as "No module named 'pi_heif'" instead of
    Pillow's reason. A wrapper is unwrapped through ``__wrapped__`` or the module-level
    ``_image_open`` in which ultralytics keeps the original.
    """
    opener = Image.open
    for _ in range(8):  # a few stacked wrappers at most
        if getattr(opener, "__module__", None) == Image.__name__:
            return opener
        inner = getattr(opener, "__wrapped__", None) or getattr(opener, "__globals__", {}).get("_image_open")
        if not callable(inner):
            break
        opener = inner
    return _OPEN_AT_IMPORT
