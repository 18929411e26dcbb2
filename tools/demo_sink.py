"""A demo smart host: accepts any mail on HOST PORT and prints it.

Only for tools/demo: it shows a newcomer that relayd really delivered.
Plain stdlib, no relayd code, so it is an independent peer.
"""
import socketserver
import sys


class Handler(socketserver.StreamRequestHandler):
    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 demo-sink ESMTP")
        envelope, data = [], []
        while True:
            line = self.rfile.readline(65536)
            if not line:
                return
            verb = line[:4].upper()
            if verb == b"EHLO":
                self.reply("250-demo-sink\r\n250-PIPELINING\r\n250 8BITMIME")
            elif verb == b"DATA":
                self.reply("354 go ahead")
                while (chunk := self.rfile.readline(65536)) not in (b".\r\n", b""):
                    data.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                print("=== demo sink received:", " ".join(envelope), flush=True)
                print(b"".join(data).decode("utf-8", "replace"), flush=True)
                envelope, data = [], []
                self.reply("250 2.0.0 Ok: delivered to the demo sink")
            elif verb == b"QUIT":
                self.reply("221 2.0.0 Bye")
                return
            else:
                if verb in (b"MAIL", b"RCPT"):
                    envelope.append(line.decode("utf-8", "replace").strip())
                self.reply("250 2.0.0 Ok")


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


if __name__ == "__main__":
    host, port = sys.argv[1], int(sys.argv[2])
    print(f"demo sink listening on {host}:{port}", flush=True)
    Server((host, port), Handler).serve_forever()
