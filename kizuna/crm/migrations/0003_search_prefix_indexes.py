from django.db import migrations

# Search words of one or two characters match the start of these columns,
# case-insensitively (kizuna/crm/listing.py). On PostgreSQL a text_pattern_ops
# index on UPPER(column) serves `UPPER(column) LIKE 'WORD%'` whatever the
# database collation; SQLite scans, which is fine at its scale.
COLUMNS = ("family_name", "given_name", "company")
TABLES = ("crm_lead", "crm_contact")


def create_prefix_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        for column in COLUMNS:
            schema_editor.execute(
                f"CREATE INDEX IF NOT EXISTS {table}_{column}_prefix ON {table} "
                f"(organization_id, UPPER({column}) text_pattern_ops)"
            )
        # The planner knows how selective UPPER(column) is only after an ANALYZE.
        schema_editor.execute(f"ANALYZE {table}")


def drop_prefix_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        for column in COLUMNS:
            schema_editor.execute(f"DROP INDEX IF EXISTS {table}_{column}_prefix")


class Migration(migrations.Migration):
    dependencies = [("crm", "0002_list_indexes")]

    operations = [migrations.RunPython(create_prefix_indexes, drop_prefix_indexes)]
