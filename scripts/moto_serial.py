"""moto 5.2.5's server, answering one request at a time: `python scripts/moto_serial.py HOST PORT`.

moto serves requests on threads, and its DynamoDB takes no lock between a condition expression's check
and the write, so two concurrent conditional writes on one item can both apply there; DynamoDB decides
each item's writes one after the other. The tests run two bot processes that race for leases on one
table: one thread gives them DynamoDB's per-item atomicity. (A single-threaded werkzeug server speaks
HTTP/1.0 and closes each connection, so one client never holds the others up.)
"""
import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import run_simple

host, port = sys.argv[1], int(sys.argv[2])
app = DomainDispatcherApplication(create_backend_app)
run_simple(host, port, app, threaded=False, request_handler=MotoRequestHandler)
