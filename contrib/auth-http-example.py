#!/usr/bin/env python3
"""An example login service for ftpgate's `[[auth]] type = "http"` (standard library only).

    python3 contrib/auth-http-example.py 127.0.0.1:8089 /srv/ftp

ftpgate POSTs JSON {username, password, client_ip, protocol, tls_client_cert, host,
session_id}. Answer 200 with {home, permissions?, quota_bytes?, quota_files?, cache_secs?}
and any limits (upload_rate/download_rate in bytes/s, network_rates, max_sessions,
allowed_networks/denied_networks as CIDR lists, expires_at in RFC 3339, disabled) to accept,
401/403 to reject (wrong password), 404 for a user this service does not know (the next
[[auth]] is asked); anything else makes the login unavailable (421, no ban). Replace USERS with
your own lookup; never keep plain passwords like this in earnest. A limit ftpgate cannot read
(a rate of 0, a network that is none) makes the login 421, never a user without that limit.
"""
import hmac
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# name: (password, permissions, limits)
USERS = {
    "ann": ("ann-secret", "elrwadfm", {"max_sessions": 4}),
    "viewer": ("look", "elr", {"download_rate": 10 * 1024 * 1024, "denied_networks": ["192.0.2.0/24"]}),
}
TOKEN = None  # e.g. "Bearer s3cret" to require that Authorization header


class Login(BaseHTTPRequestHandler):
    def do_POST(self):
        if TOKEN and self.headers.get("Authorization") != TOKEN:
            return self.answer(500, {"error": "bad token"})
        login = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        user = USERS.get(login["username"])
        if user is None:
            return self.answer(404, {})
        if not hmac.compare_digest(user[0], login["password"]):
            return self.answer(401, {})
        home = "%s/%s" % (ROOT, login["username"])
        self.answer(200, {"home": home, "permissions": user[1], "cache_secs": 30, **user[2]})

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    host, port = sys.argv[1].rsplit(":", 1)
    ROOT = sys.argv[2].rstrip("/")
    ThreadingHTTPServer((host, int(port)), Login).serve_forever()
