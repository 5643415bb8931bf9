"""Keep ultralytics offline: no update checks, no auto-install, no font or weight downloads.

``detect/__init__.py`` calls :func:`configure_ultralytics_env` before anything can import
ultralytics, so every entry point (CLI, service, tests) is offline by default. A user who wants
ultralytics' online behaviour sets the variables themselves; ``setdefault`` respects them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
#: ultralytics keeps its settings and fonts in this sub-folder of ``$YOLO_CONFIG_DIR``; its font
#: check (run when its trainer or validator draws plots) looks there and downloads otherwise.
USER_SUBDIR = "Ultralytics"


def default_config_dir() -> Path:
    """Project-local ultralytics config dir: ``<repo>/.cache/ultralytics`` (or ``$DETECT_HOME``)."""
    home = os.environ.get("DETECT_HOME")
    base = Path(home) if home else Path(__file__).resolve().parent.parent / ".cache"
    return base / "ultralytics"


def seed_fonts(config_dir: Path) -> None:
    """Copy matplotlib's DejaVuSans as the Arial fonts ultralytics would otherwise download."""
    missing = [name for name in FONT_NAMES if not (config_dir / name).exists()]
    if not missing:
        return
    import matplotlib

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    config_dir.mkdir(parents=True, exist_ok=True)
    for name in missing:
        shutil.copyfile(source, config_dir / name)


def configure_ultralytics_env() -> Path:
    """Set the ultralytics environment for offline use; return its config dir.

    Only environment variables and files in the config dir are touched; ultralytics itself is
    not imported here (importing it is slow). :func:`disable_ultralytics_sync` finishes the job
    once ultralytics is imported.
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    os.environ.setdefault("YOLO_VERBOSE", "0")
    config_dir = Path(os.environ.setdefault("YOLO_CONFIG_DIR", str(default_config_dir())))
    try:
        seed_fonts(config_dir)
        seed_fonts(config_dir / USER_SUBDIR)
    except OSError:  # read-only install: ultralytics then warns, nothing is downloaded offline
        pass
    return config_dir


def disable_ultralytics_sync() -> None:
    """Turn off ultralytics' analytics/sync in its settings file (imports ultralytics)."""
    from ultralytics.utils import SETTINGS

    if SETTINGS.get("sync", True):
        SETTINGS.update({"sync": False})


def offline_train_settings() -> Path:
    """Make ultralytics' trainer safe offline (imports ultralytics); returns its user config dir.

    Re-applies :func:`configure_ultralytics_env` (``setdefault``: a user's own values stay), seeds
    the fonts in the folder ultralytics actually reads (``USER_CONFIG_DIR``, normally
    ``$YOLO_CONFIG_DIR/Ultralytics``; its font check runs when its trainer draws plots and
    downloads otherwise) and turns settings sync off.

    Raises:
        OSError: the fonts cannot be written there (the trainer would try to download them).
    """
    configure_ultralytics_env()
    from ultralytics.utils import USER_CONFIG_DIR

    seed_fonts(Path(USER_CONFIG_DIR))
    disable_ultralytics_sync()
    return Path(USER_CONFIG_DIR)
