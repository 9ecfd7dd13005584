import sys
from pathlib import Path

from gridline_boot.cli import main

from .app import create_app
from .cli import issue_staff_token
from .settings import IntakeSettings

if __name__ == "__main__":
    sys.exit(
        main(
            sys.argv[1:],
            settings_cls=IntakeSettings,
            create_app=create_app,
            migrations_dir=Path(__file__).parent / "migrations",
            extra_commands={"issue-staff-token": issue_staff_token},
        )
    )
