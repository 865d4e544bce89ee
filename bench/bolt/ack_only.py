"""The Bolt for Python baseline of scripts/bench: acknowledges `/aurora` and does nothing else.

Served as Bolt's documentation recommends for production (its built-in HTTP server is for development
only): the Flask adapter under gunicorn, e.g.

    gunicorn -w 2 --threads 32 -b 127.0.0.1:3101 ack_only:flask_app

Bolt verifies every request's signature (`request_verification_enabled` is on by default) and its
timestamp (five minutes); it keeps no replay record. The Web API (for the one `auth.test` Bolt makes per
worker to learn its bot identity) is the Slack stand-in at SLACK_API_URL.
"""

import os

from flask import Flask, request
from slack_bolt import App
from slack_bolt.adapter.flask import SlackRequestHandler
from slack_sdk import WebClient

api_url = os.environ.get("SLACK_API_URL", "http://127.0.0.1:9/api").rstrip("/") + "/"
token = os.environ.get("SLACK_BOT_TOKEN", "xoxb-bench")

app = App(
    signing_secret=os.environ.get("SLACK_SIGNING_SECRET", "bench"),
    client=WebClient(token=token, base_url=api_url),
    token_verification_enabled=False,
)


@app.command("/aurora")
def aurora(ack):
    ack()


flask_app = Flask(__name__)
handler = SlackRequestHandler(app)


@flask_app.route("/slack/commands", methods=["POST"])
def slack_commands():
    return handler.handle(request)
