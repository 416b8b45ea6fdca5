"""STAND-IN for IBM PowerSC MFA's ``pmfad`` daemon (not IBM code).

An HTTPS service on its node's address, port 6793 by default. Every request to
``/policyAuth/`` really uses the MFA database: it inserts a row into ``auth_events`` and
reads it back, answering 200 with the row id, or 503 when the database cannot take a
write (down, or a read-only standby). ``/policyAuth/count`` returns the number of rows.
"""

from __future__ import annotations

import argparse
import json
import signal
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2

SCHEMA = """
CREATE TABLE IF NOT EXISTS auth_events (
    id bigserial PRIMARY KEY,
    node text NOT NULL,
    client_seq bigint,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""


class Database:
    def __init__(self, dsn: str):
        self.dsn = dsn
        self.local = threading.local()

    def _conn(self):
        conn = getattr(self.local, "conn", None)
        if conn is None or conn.closed:
            conn = psycopg2.connect(self.dsn, connect_timeout=2)
            conn.autocommit = True
            self.local.conn = conn
        return conn

    def run(self, sql: str, params=()):
        try:
            with self._conn().cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchone()
        except psycopg2.Error:
            conn = getattr(self.local, "conn", None)
            if conn is not None:
                conn.close()
            raise


def handler_for(db: Database, node: str):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            path, _, query = self.path.partition("?")
            if not path.startswith("/policyAuth"):
                return self._reply(404, {"error": "not found"})
            try:
                if path.rstrip("/").endswith("count"):
                    return self._reply(200, {"count": db.run("SELECT count(*) FROM auth_events")[0]})
                seq = int(query.split("seq=")[1]) if "seq=" in query else None
                row = db.run("INSERT INTO auth_events (node, client_seq) VALUES (%s, %s) RETURNING id", (node, seq))
                db.run("SELECT id FROM auth_events WHERE id = %s", (row[0],))
                return self._reply(200, {"id": row[0], "node": node, "seq": seq})
            except psycopg2.Error as err:
                return self._reply(503, {"error": str(err).strip().splitlines()[0]})

        def _reply(self, code: int, body: dict):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    return Handler


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True)
    parser.add_argument("--port", type=int, default=6793)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument(
        "--stop-delay", type=float, default=0, help="seconds between SIGTERM and the shutdown (a daemon slow to stop)"
    )
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.listen, args.port), handler_for(Database(args.dsn), args.node))
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)

    def shut_down():
        time.sleep(args.stop_delay)
        server.shutdown()

    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=shut_down, daemon=True).start())
    server.serve_forever(poll_interval=0.05)
    server.server_close()


if __name__ == "__main__":
    main()
