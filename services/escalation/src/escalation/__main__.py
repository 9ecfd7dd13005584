import sys
from pathlib import Path

from gridline_boot.cli import main

from .app import create_app
from .settings import EscalationSettings

if __name__ == "__main__":
    sys.exit(
        main(
            sys.argv[1:],
            settings_cls=EscalationSettings,
            create_app=create_app,
            migrations_dir=Path(__file__).parent / "migrations",
        )
    )
