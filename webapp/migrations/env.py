"""Alembic environment: migrates through the connection handed over by ``webapp.db.upgrade``."""

from alembic import context

from webapp.models import Base

# There is no alembic.ini: the app runs migrations itself at start-up, on its own engine.
context.configure(connection=context.config.attributes["connection"], target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
