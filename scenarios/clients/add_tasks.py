#!/usr/bin/env python3
"""A client nobody here wrote: adds tasks to a kanban board with Python's own sqlite3.

Started by kanban-harness as a `command` worker, with KANBAN_DB (the board), KANBAN_LEDGER
(where to write its text ledger) and KANBAN_SEED (its seed) in the environment. Every task
it adds is announced in the ledger before the commit (`intent task <title>`) and confirmed
after the commit returned (`ack task <title>`), one line each, each line written whole.
It runs until the harness stops it (SIGTERM).
"""
import os
import random
import signal
import sqlite3
import sys
import time

stop = False


def on_term(_signum, _frame):
    global stop
    stop = True


def main() -> int:
    signal.signal(signal.SIGTERM, on_term)
    db = os.environ["KANBAN_DB"]
    rng = random.Random(int(os.environ["KANBAN_SEED"]))
    ledger = os.open(os.environ["KANBAN_LEDGER"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    # isolation_level=None: we issue BEGIN IMMEDIATE ourselves (no read-to-write upgrade).
    conn = sqlite3.connect(db, timeout=1.0, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    n = 0
    while not stop:
        n += 1
        title = f"py-{os.getpid()}-{n}"
        now = int(time.time() * 1000)
        os.write(ledger, f"intent task {title}\n".encode())
        try:
            conn.execute("BEGIN IMMEDIATE")
            cur = conn.execute(
                "INSERT INTO tasks (title, body, status, priority, created_at, updated_at)"
                " VALUES (?, 'from python', 'todo', ?, ?, ?)",
                (title, rng.randrange(5), now, now),
            )
            conn.execute(
                "INSERT INTO task_events (task_id, run_id, kind, payload, created_at)"
                " VALUES (?, NULL, 'created', ?, ?)",
                (cur.lastrowid, title, now),
            )
            conn.execute("COMMIT")
        except sqlite3.OperationalError as e:  # busy: give up this one, as a client would
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            print(f"add_tasks: {e}", file=sys.stderr)
            continue
        os.write(ledger, f"ack task {title}\n".encode())
        time.sleep(rng.uniform(0.001, 0.005))
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
