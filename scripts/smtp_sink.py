#!/usr/bin/env python3
"""A local SMTP sink for tests: aiosmtpd on 127.0.0.1:PORT, saving every message it receives as
OUTDIR/<n>.eml, then printing "ready" once it listens. Stops on SIGTERM or when stdin closes.

Usage: smtp_sink.py PORT OUTDIR
"""
import itertools
import os
import signal
import sys
import threading

from aiosmtpd.controller import Controller


class Save:
    def __init__(self, outdir):
        self.outdir = outdir
        self.n = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        path = os.path.join(self.outdir, f"{next(self.n)}.eml")
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(tmp, path)
        return "250 Message accepted for delivery"


def main():
    port, outdir = int(sys.argv[1]), sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    controller = Controller(Save(outdir), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait()
    controller.stop()


if __name__ == "__main__":
    main()
