from django.db import migrations

# Lists at a million rows on PostgreSQL (issue 11, kizuna/crm/listing.py). SQLite keeps the
# indexes of the models and scans, which is fine at its scale.
#
# 1. Search: one trigram index on " family given company email" (a leading space, so every
#    word of it starts after a space). A word of three characters or more is found anywhere
#    (LIKE '%WORD%'), a shorter one at the start of a word (LIKE '% WO%': pg_trgm then looks
#    up the word-start trigram "  W"/" WO"). Every word of a search is one condition on the
#    same index, so PostgreSQL intersects them inside one index scan: two short words took
#    1.2 s with the prefix btree indexes of 0003 (an OR of three indexes per word) and take
#    about 10 ms here. The index of 0002 and the prefix indexes of 0003 give way to it.
# 2. Filters: the status, owner and source indexes also carry the other two filter columns
#    (INCLUDE), so the count of any combination of filters is read from one index alone,
#    without visiting the table (three filters together: 768 ms of table reads before).
#    Same names and key columns as the models' indexes, which Django keeps creating on SQLite.
SEARCH_EXPRESSION = (
    "UPPER((' ' || family_name || ' ' || given_name || ' ' || company || ' ' || email))"
)
OLD_SEARCH_EXPRESSION = (
    "UPPER((family_name || ' ' || given_name || ' ' || company || ' ' || email))"
)
TABLES = ("crm_lead", "crm_contact")
PREFIX_COLUMNS = ("family_name", "given_name", "company")
# index name -> (table, key columns, columns carried along)
FILTER_INDEXES = {
    "crm_lead_status": ("crm_lead", "status", ("owner_id", "lead_source")),
    "crm_lead_owner": ("crm_lead", "owner_id", ("status", "lead_source")),
    "crm_lead_source": ("crm_lead", "lead_source", ("status", "owner_id")),
    "crm_contact_owner": ("crm_contact", "owner_id", ("lead_source",)),
    "crm_contact_source": ("crm_contact", "lead_source", ("owner_id",)),
}


def _filter_index(name: str, *, covering: bool) -> str:
    table, column, carried = FILTER_INDEXES[name]
    include = f" INCLUDE ({', '.join(carried)})" if covering else ""
    return (
        f"CREATE INDEX {name} ON {table} "
        f"(organization_id, {column}, created_at DESC, id DESC){include}"
    )


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for table in TABLES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {table}_search_trgm")
        for column in PREFIX_COLUMNS:
            schema_editor.execute(f"DROP INDEX IF EXISTS {table}_{column}_prefix")
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {table}_words_trgm ON {table} "
            f"USING gin ({SEARCH_EXPRESSION} gin_trgm_ops)"
        )
    for name in FILTER_INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")
        schema_editor.execute(_filter_index(name, covering=True))
    for table in TABLES:
        # The planner knows how selective the indexed expression is only after an ANALYZE.
        schema_editor.execute(f"ANALYZE {table}")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in FILTER_INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")
        schema_editor.execute(_filter_index(name, covering=False))
    for table in TABLES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {table}_words_trgm")
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {table}_search_trgm ON {table} "
            f"USING gin ({OLD_SEARCH_EXPRESSION} gin_trgm_ops)"
        )
        for column in PREFIX_COLUMNS:
            schema_editor.execute(
                f"CREATE INDEX IF NOT EXISTS {table}_{column}_prefix ON {table} "
                f"(organization_id, UPPER({column}) text_pattern_ops)"
            )


class Migration(migrations.Migration):
    dependencies = [("crm", "0005_survey_activity_kinds")]

    operations = [migrations.RunPython(forwards, backwards)]
