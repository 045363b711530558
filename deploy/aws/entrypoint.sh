#!/bin/sh
# Container entrypoint (ECS): with B3_RUN_ROLE_ARN set (code server and runs), boto3 assumes that role (the lake
# stack's DagsterRunRole) from the task role's credentials. Then runs the command ECS gives (start.sh ... or the
# run launcher's `dagster api execute_run ...`).
set -eu
if [ -n "${B3_RUN_ROLE_ARN:-}" ]; then
    export AWS_CONFIG_FILE="${AWS_CONFIG_FILE:-/tmp/b3-dagster-aws-config}"
    printf '[profile b3-runs]\nrole_arn = %s\ncredential_source = EcsContainer\n' "$B3_RUN_ROLE_ARN" >"$AWS_CONFIG_FILE"
    export AWS_PROFILE=b3-runs
fi
exec "$@"
