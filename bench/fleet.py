"""scripts/bench, Approve clicks: the AWS emulator's scenario and the bot's clusters for N global clusters.

    python3 bench/fleet.py N SCENARIO.json CLUSTERS.toml

The scenario is awsim's `Scenario::fleet(N)` (two-Region global clusters `g{i}-global`, members
`g{i}-east` (primary, us-east-1) and `g{i}-west`, CNAMEs `w{i}`/`r{i}` in one private zone) with every
promotion (detach, managed failover, switchover) taking an hour, so that the runs the clicks start are
still waiting when the measurement ends. CLUSTERS.toml holds the bot's `[[clusters]]` `c{i}` for them.
"""

import json
import sys

HOUR_MS = 3_600_000


def main():
    n, scenario_path, clusters_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    zone = "aurora_private_hosted_zone"
    globals_, records, clusters = [], [], []
    for i in range(n):
        globals_.append(
            {
                "id": f"g{i}-global",
                "engine": "aurora-postgresql",
                "engine_version": "15.4",
                "members": [
                    {"region": "us-east-1", "cluster_id": f"g{i}-east", "primary": True, "instances": [f"g{i}-east-1"]},
                    {
                        "region": "us-west-2",
                        "cluster_id": f"g{i}-west",
                        "instances": [f"g{i}-west-1"],
                        "replication_lag_ms": 800,
                    },
                ],
            }
        )
        for record, endpoint in (("w", "writer"), ("r", "reader")):
            records.append(
                {
                    "name": f"{record}{i}.{zone}",
                    "type": "CNAME",
                    "ttl": 1,
                    "points_to": {"cluster": f"g{i}-east", "endpoint": endpoint},
                }
            )
        clusters.append(
            f'[[clusters]]\nname = "c{i}"\nglobal_cluster_id = "g{i}-global"\nregions = ["us-east-1", "us-west-2"]\n'
            f'hosted_zone_id = "Z0123456789"\nwriter_record = "w{i}.{zone}"\nreader_record = "r{i}.{zone}"\n'
        )
    scenario = {
        "timings": {
            "detach_ms": HOUR_MS,
            "pending_ms": HOUR_MS,
            "failover_ms": HOUR_MS,
            "switchover_ms": HOUR_MS,
            "rejoin_ms": 4_000,
            "dns_propagation_ms": 2_000,
        },
        "global_clusters": globals_,
        "hosted_zones": [
            {
                "id": "Z0123456789",
                "name": zone,
                "private": True,
                "vpcs": [{"region": "us-east-1", "id": "vpc-0east"}, {"region": "us-west-2", "id": "vpc-0west"}],
                "records": records,
            }
        ],
    }
    with open(scenario_path, "w") as f:
        json.dump(scenario, f)
    with open(clusters_path, "w") as f:
        f.write("\n".join(clusters))


if __name__ == "__main__":
    main()
