"""Alembic environment: migrations run programmatically from scoring.history.store.migrate()."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from scoring.history import exchange as _exchange_tables  # noqa: F401  (its tables join the metadata)
from scoring.history import snapshot_index as _snapshot_tables  # noqa: F401  (likewise)
from scoring.history.tables import metadata, schema_include_object

config = context.config
target_metadata = metadata


def run_migrations_online() -> None:
    connectable = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            include_object=schema_include_object,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
