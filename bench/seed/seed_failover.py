"""The seed's Lambda, run as-is against the emulator (issue 13, item 2).

The function below is the Lambda of ../shared/seed/aurora-global-failover-blueprint.txt ("Deploy multi-Region
Amazon Aurora applications with a failover blueprint", AWS Database Blog), restored to runnable Python and
otherwise unchanged: the same calls in the same order, the same status loop (DescribeDBClusters again and
again with no sleep in between, exactly as published: `time` is imported and never used), the same record
names, TTL 1 and comment "string". Where the blog's listing lost text (the arguments of describe_db_clusters
and the HostedZoneId / ChangeBatch keywords of change_resource_record_sets), the only arguments that make the
call valid are filled in. The `try:` the listing lost is put where its `except` implies (around the work).

Run directly with boto3 pointed at the emulator: AWS_ENDPOINT_URL (boto3 >= 1.28 honours it), AWS_REGION /
AWS_DEFAULT_REGION = the secondary's Region (a Lambda runs in its own Region; RemoveFromGlobalCluster must be
sent to the detached cluster's Region), GLOBAL_CLUSTER_NAME, SECONDARY_CLUSTER_ARN, HOSTED_ZONE_ID as the
Lambda's environment. Prints one JSON line: {"ok": bool, "seconds": float, "error": str|null}.
"""

# This Lambda function promotes the aurora db in secondary region,
# changes the route53 entries for reader and writer endpoint for application to work
from __future__ import print_function


def lambda_handler(event, context):
    import json
    import time
    import boto3
    import os

    # Initialize
    client = boto3.client("rds")
    dnsclient = boto3.client("route53")

    # populate the existing environment information
    vGlobalClusterIdentifier = os.environ["GLOBAL_CLUSTER_NAME"]
    vDbClusterIdentifier = os.environ["SECONDARY_CLUSTER_ARN"]
    vHostedZoneId = os.environ["HOSTED_ZONE_ID"]

    try:
        # promote the secondary region aurora cluster
        response = client.remove_from_global_cluster(
            GlobalClusterIdentifier=vGlobalClusterIdentifier,
            DbClusterIdentifier=vDbClusterIdentifier,
        )

        # check status of secondary region aurora cluster in regular intervals until it becomes available and write endpoint is enabled
        response = client.describe_db_clusters(DBClusterIdentifier=vDbClusterIdentifier)
        status = response["DBClusters"][0]["Status"]
        checkWriter = response["DBClusters"][0]["DBClusterMembers"][0]["IsClusterWriter"]

        while status != "available" or not checkWriter:
            response = client.describe_db_clusters(DBClusterIdentifier=vDbClusterIdentifier)
            status = response["DBClusters"][0]["Status"]
            checkWriter = response["DBClusters"][0]["DBClusterMembers"][0]["IsClusterWriter"]

        if status == "available" and checkWriter:

            readerendpoint = response["DBClusters"][0]["ReaderEndpoint"]
            writeendpoint = response["DBClusters"][0]["Endpoint"]

            # change the Route53 CNAME records with latest database endpoints
            routeresponse = dnsclient.change_resource_record_sets(
                HostedZoneId=vHostedZoneId,
                ChangeBatch={
                    "Comment": "string",
                    "Changes": [
                        {
                            "Action": "UPSERT",
                            "ResourceRecordSet": {
                                "Name": "aurorareadendpoint.aurora_private_hosted_zone",
                                "Type": "CNAME",
                                "TTL": 1,
                                "ResourceRecords": [{"Value": readerendpoint}],
                            },
                        },
                        {
                            "Action": "UPSERT",
                            "ResourceRecordSet": {
                                "Name": "aurorawriteendpoint.aurora_private_hosted_zone",
                                "Type": "CNAME",
                                "TTL": 1,
                                "ResourceRecords": [{"Value": writeendpoint}],
                            },
                        },
                    ],
                },
            )
            print("Successfully Promoted Aurora Primary to - " + vDbClusterIdentifier)
            return True

    except Exception as e:
        message = "Error promoting Aurora db cluster - " + vDbClusterIdentifier
        raise Exception(message)


if __name__ == "__main__":
    import json
    import sys
    import time

    started = time.monotonic()
    try:
        ok = lambda_handler({}, None) is True
        error = None
    except Exception as e:  # the handler's own exception, with its cause
        ok, error = False, f"{e} ({e.__cause__ or e.__context__})"
    print(json.dumps({"ok": ok, "seconds": time.monotonic() - started, "error": error}))
    sys.exit(0 if ok else 1)
