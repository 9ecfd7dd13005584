from escalation.store import metadata
from gridline_boot.alembic_env import run

run(metadata)
