"""scripts/bench, Approve clicks: reads the bot's store (read-only, while the bot runs).

    python3 bench/pending.py DB N CLICKS.txt   waits (up to 10 minutes) until N requests are pending with
                                               their approval message delivered, then writes one line
                                               `REQUEST_ID CHANNEL TS` per pending request (loadgen --clicks)
    python3 bench/pending.py DB --decided      counts the requests and runs by state
"""

import sqlite3
import sys
import time


def connect(db):
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)


def pending(con):
    return con.execute(
        "SELECT r.id, o.channel, o.delivered_ts FROM requests r JOIN outbox o ON o.id = r.message "
        "WHERE r.state = 'pending' AND o.delivered_ts IS NOT NULL ORDER BY r.id"
    ).fetchall()


def by_state(con, table):
    rows = con.execute(f"SELECT state, count(*) FROM {table} GROUP BY state ORDER BY state").fetchall()
    return ", ".join(f"{s} {c}" for s, c in rows) or "none"


def main():
    db = sys.argv[1]
    if sys.argv[2] == "--decided":
        con = connect(db)
        print(f"after the clicks: requests {by_state(con, 'requests')}; runs {by_state(con, 'runs')}")
        return
    n, path = int(sys.argv[2]), sys.argv[3]
    started = time.time()
    rows = []
    while time.time() - started < 600:
        con = connect(db)
        rows = pending(con)
        if len(rows) >= n:
            break
        con.close()
        time.sleep(1)
    waited = time.time() - started
    with open(path, "w") as f:
        for r in rows:
            f.write(f"{r[0]} {r[1]} {r[2]}\n")
    con = connect(db)
    print(f"{len(rows)} of {n} requests pending with their approval message delivered, {waited:.0f} s after the "
          f"last command was sent (requests {by_state(con, 'requests')})")
    if len(rows) < n:
        sys.exit(f"bench: only {len(rows)} of {n} requests became pending")


if __name__ == "__main__":
    main()
