"""The weekly table maintenance schedule."""

import dagster as dg

from b3_dagster.defs.maintenance.jobs import table_maintenance_job

table_maintenance_schedule = dg.ScheduleDefinition(
    job=table_maintenance_job, cron_schedule="0 3 * * 0", execution_timezone="America/Sao_Paulo",
    description="Weekly Iceberg maintenance (Sunday 03:00, no B3 session).")
