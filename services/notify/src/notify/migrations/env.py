from gridline_boot.alembic_env import run
from notify.store import metadata

run(metadata)
