from gridline_boot.alembic_env import run
from routing.store import metadata

run(metadata)
