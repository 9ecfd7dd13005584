from gridline_boot.alembic_env import run
from escalation.store import metadata

run(metadata)
