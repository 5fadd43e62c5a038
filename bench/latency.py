"""A loopback proxy in front of an S3-compatible server that waits before
forwarding each request for a table's log (`_delta_log` in its path or
query), as a round trip to a real S3 takes (tens of milliseconds) where moto
on loopback answers in one or two. Data objects pass without a wait.

    python3 bench/latency.py LISTEN_PORT UPSTREAM_PORT SECONDS
"""
import http.client
import http.server
import socketserver
import sys
import time

LISTEN, UPSTREAM, DELAY = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
HOP = ("content-length", "transfer-encoding", "connection", "keep-alive")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def forward(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        if "_delta_log" in self.path:
            time.sleep(DELAY)
        up = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        up.request(self.command, self.path, body=body, headers=headers)
        r = up.getresponse()
        data = r.read()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in HOP:
                self.send_header(k, v)
        # A HEAD answer has no body but the object's length.
        length = r.getheader("Content-Length") if self.command == "HEAD" else None
        self.send_header("Content-Length", length or str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        up.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


Server(("127.0.0.1", LISTEN), Handler).serve_forever()
