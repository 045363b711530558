"""The raw-partition sensor watching an S3 prefix on moto's S3 (real boto3 calls over HTTP)."""

import datetime as dt

import dagster as dg

from b3_dagster.defs.automation.sensors import raw_partition_sensor
from b3_dagster.defs.resources import LakeResource
from b3_dagster.definitions import defs
from b3_dagster.storage.layout import parquet_bytes


def evaluate(instance, root, cursor=None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, definitions=defs,
                                      resources={"lake": LakeResource(root=root)})
    return raw_partition_sensor(context)


def test_files_dropped_on_s3_are_seen_once_and_again_when_changed(bucket, s3, recorded_snapshots):
    snapshot = recorded_snapshots[-1]
    key = f"lake/raw/date={snapshot.portfolio_date}/ibov_setor.parquet"
    s3.put_object(Bucket=bucket, Key=key, Body=parquet_bytes(snapshot.to_arrow()))
    s3.put_object(Bucket=bucket, Key="lake/raw/date=2025-11-20/ibov_setor.parquet", Body=b"holiday")
    s3.put_object(Bucket=bucket, Key="elsewhere/raw/date=2025-04-08/ibov_setor.parquet", Body=b"outside the lake")
    root = f"s3://{bucket}/lake"
    with dg.instance_for_test() as instance:
        first = evaluate(instance, root)
        assert [r.partition_key for r in first.run_requests] == [snapshot.portfolio_date.isoformat()]
        assert first.asset_events[0].metadata["path"].value == f"s3://{bucket}/{key}"

        assert evaluate(instance, root, first.cursor).run_requests == []

        changed = snapshot.to_arrow().slice(0, len(snapshot.rows) - 1)  # someone re-uploads a different file
        s3.put_object(Bucket=bucket, Key=key, Body=parquet_bytes(changed))
        third = evaluate(instance, root, first.cursor)
        assert [r.partition_key for r in third.run_requests] == [snapshot.portfolio_date.isoformat()]
        assert third.run_requests[0].run_key != first.run_requests[0].run_key
        assert snapshot.portfolio_date > dt.date(2020, 1, 1)
