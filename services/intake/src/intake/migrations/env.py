from gridline_boot.alembic_env import run
from intake.store import metadata

run(metadata)
