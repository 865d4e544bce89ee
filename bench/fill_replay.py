"""scripts/bench, replay table: fills the bot's replay table (`seen_requests`) with recent signatures.

    python3 bench/fill_replay.py DB ROWS      inserts ROWS distinct signatures (the bot stopped)
    python3 bench/fill_replay.py DB --count   prints how many rows the table holds

The bot must have created its schema (one start) and be stopped. A row is what the bot writes for a
request: its signature (`v0=` and 64 hex digits, distinct) and the time it was seen, in milliseconds
since the Unix epoch. The times are spread over the two hours from now: the bot prunes rows older than
its replay window every 30 s, and rows from the future stay in place for the whole benchmark, so the
table holds ROWS rows (plus what the load adds) from the first request to the last.
"""

import hashlib
import sqlite3
import sys
import time


def main():
    db = sys.argv[1]
    con = sqlite3.connect(db)
    if sys.argv[2] == "--count":
        print(con.execute("SELECT count(*) FROM seen_requests").fetchone()[0])
        return
    rows = int(sys.argv[2])
    now_ms = int(time.time() * 1000)
    span = 2 * 3600 * 1000
    con.executemany(
        "INSERT INTO seen_requests (signature, at) VALUES (?, ?)",
        (("v0=" + hashlib.sha256(f"bench-{i}".encode()).hexdigest(), now_ms + i * span // rows) for i in range(rows)),
    )
    con.commit()
    print(f"replay table: {con.execute('SELECT count(*) FROM seen_requests').fetchone()[0]} rows")


if __name__ == "__main__":
    main()
