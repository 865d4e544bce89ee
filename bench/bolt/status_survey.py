"""The like-for-like Bolt for Python app of scripts/bench: acknowledges `/aurora`, then does what the bot
does after its acknowledgement: the status survey of one Aurora Global Database with boto3, answered at the
command's response_url.

The survey follows src/status.rs call for call, against the same AWS emulator (awsim, at
AWS_ENDPOINT_URL, which boto3 reads since 1.28): DescribeGlobalClusters (the topology), DescribeDBClusters
of each member in its own Region, CloudWatch GetMetricData of each secondary's replication lag
(AuroraGlobalDBRPOLag and AuroraGlobalDBReplicationLag, as the bot asks; but boto3 sends it as JSON 1.0,
which awsim does not speak, so against awsim it fails at once and the lag shows as unknown), and Route 53
ListResourceRecordSets for the writer and the reader CNAME; then one plain-text answer posted to the
response_url with Bolt's `respond`. Calls are made one after the other (a plain home-grown bot); boto3
clients are made once per Region and shared by the threads (boto3 clients are thread-safe).

The survey runs as a lazy listener (Bolt's `lazy=[...]`): the acknowledgement function answers 200 at
once and Bolt runs the lazy function afterwards on its own thread pool. Served like ack_only.py (the
Flask adapter under gunicorn), e.g.

    gunicorn -w 2 --threads 32 -b 127.0.0.1:3103 status_survey:flask_app

Environment: SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN, SLACK_API_URL (the Slack stand-in), AWS_ENDPOINT_URL,
AWS credentials (any: awsim does not check them), and the cluster: BENCH_GLOBAL_CLUSTER, BENCH_REGIONS
(comma-separated), BENCH_ZONE, BENCH_WRITER_RECORD, BENCH_READER_RECORD.
"""

import datetime
import os
import threading

import boto3
from botocore.config import Config
from flask import Flask, request
from slack_bolt import App
from slack_bolt.adapter.flask import SlackRequestHandler
from slack_sdk import WebClient

api_url = os.environ.get("SLACK_API_URL", "http://127.0.0.1:9/api").rstrip("/") + "/"
token = os.environ.get("SLACK_BOT_TOKEN", "xoxb-bench")
GLOBAL = os.environ.get("BENCH_GLOBAL_CLUSTER", "orders-global")
REGIONS = os.environ.get("BENCH_REGIONS", "us-east-1,us-west-2").split(",")
ZONE = os.environ.get("BENCH_ZONE", "Z0123456789")
RECORDS = [
    os.environ.get("BENCH_WRITER_RECORD", "aurorawriteendpoint.aurora_private_hosted_zone"),
    os.environ.get("BENCH_READER_RECORD", "aurorareadendpoint.aurora_private_hosted_zone"),
]
# One attempt per call, as the bot's benchmark configuration (AWS_MAX_ATTEMPTS=1).
AWS_CONFIG = Config(retries={"max_attempts": 1, "mode": "standard"}, max_pool_connections=64)

_clients = {}
_clients_lock = threading.Lock()


def client(service, region):
    """One boto3 client per service and Region, made once (making one costs milliseconds)."""
    key = (service, region)
    with _clients_lock:
        if key not in _clients:
            _clients[key] = boto3.session.Session().client(service, region_name=region, config=AWS_CONFIG)
        return _clients[key]


def lag_ms(member_id, region, source_region):
    now = datetime.datetime.now(datetime.timezone.utc)
    queries = [
        {
            "Id": qid,
            "MetricStat": {
                "Metric": {
                    "Namespace": "AWS/RDS",
                    "MetricName": metric,
                    "Dimensions": [
                        {"Name": "DBClusterIdentifier", "Value": member_id},
                        {"Name": "SourceRegion", "Value": source_region},
                    ],
                },
                "Period": 60,
                "Stat": "Maximum",
            },
        }
        for qid, metric in (("rpo", "AuroraGlobalDBRPOLag"), ("replication", "AuroraGlobalDBReplicationLag"))
    ]
    try:
        out = client("cloudwatch", region).get_metric_data(
            MetricDataQueries=queries, StartTime=now - datetime.timedelta(minutes=10), EndTime=now
        )
    except Exception:
        # boto3 speaks JSON 1.0 to CloudWatch; awsim speaks only RPC v2 CBOR (what the Rust SDK sends) and
        # answers anything else with an error at once: the lag is unknown, as when CloudWatch fails.
        return None
    for r in out.get("MetricDataResults", []):
        if r.get("Values"):
            return r["Values"][0]
    return None


def survey():
    """The status of the global cluster, as text (what src/status.rs reads, one call after the other)."""
    topology = client("rds", REGIONS[0]).describe_global_clusters(GlobalClusterIdentifier=GLOBAL)
    g = topology["GlobalClusters"][0]
    members = g.get("GlobalClusterMembers", [])
    writer_region = next((m["DBClusterArn"].split(":")[3] for m in members if m.get("IsWriter")), None)
    lines = [f"{GLOBAL}: {g.get('Status')}"]
    for m in members:
        arn = m["DBClusterArn"]
        region, cluster_id = arn.split(":")[3], arn.split(":")[-1]
        c = client("rds", region).describe_db_clusters(DBClusterIdentifier=arn)["DBClusters"][0]
        line = f"{cluster_id} ({region}) {'writer' if m.get('IsWriter') else 'reader'} {c.get('Status')}"
        if not m.get("IsWriter") and writer_region:
            line += f", lag {lag_ms(cluster_id, region, writer_region)} ms"
        lines.append(line)
    r53 = client("route53", "us-east-1")
    for name in RECORDS:
        out = r53.list_resource_record_sets(
            HostedZoneId=ZONE, StartRecordName=name, StartRecordType="CNAME", MaxItems="1"
        )
        values = [v["Value"] for rs in out.get("ResourceRecordSets", []) for v in rs.get("ResourceRecords", [])]
        lines.append(f"{name} -> {values[0] if values else 'missing'}")
    return "\n".join(lines)


app = App(
    signing_secret=os.environ.get("SLACK_SIGNING_SECRET", "bench"),
    client=WebClient(token=token, base_url=api_url),
    token_verification_enabled=False,
)


def acknowledge(ack):
    ack()


def status(respond):
    try:
        text = survey()
    except Exception as e:  # the answer says the read failed, as the bot's does
        text = f"cannot read the status: {type(e).__name__}"
    respond(text=text, response_type="ephemeral")


app.command("/aurora")(ack=acknowledge, lazy=[status])

flask_app = Flask(__name__)
handler = SlackRequestHandler(app)


@flask_app.route("/slack/commands", methods=["POST"])
def slack_commands():
    return handler.handle(request)
