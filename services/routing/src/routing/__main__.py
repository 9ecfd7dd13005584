import sys
from pathlib import Path

from gridline_boot.cli import main

from .app import create_app
from .cli import import_directory_command
from .rebuild import rebuild_command
from .settings import RoutingSettings

if __name__ == "__main__":
    sys.exit(
        main(
            sys.argv[1:],
            settings_cls=RoutingSettings,
            create_app=create_app,
            migrations_dir=Path(__file__).parent / "migrations",
            extra_commands={"import-directory": import_directory_command, "rebuild-tickets": rebuild_command},
        )
    )
