import sys
from pathlib import Path

from gridline_boot.cli import main

from .app import create_app
from .replay import replay_failed
from .settings import NotifySettings

if __name__ == "__main__":
    sys.exit(
        main(
            sys.argv[1:],
            settings_cls=NotifySettings,
            create_app=create_app,
            migrations_dir=Path(__file__).parent / "migrations",
            extra_commands={"replay-failed": replay_failed},
        )
    )
