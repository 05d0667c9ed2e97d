"""Python ftplib clients for the fleet tests (bin/ftpgate/tests/fleet.rs).

    session HOST PORT USER PASSWORD SOURCE tls|plain pasv|epsv NAME
        One session from SOURCE: STOR NAME (64 KiB), RETR it back, compare; prints
        "ok PORT" (the passive port of the RETR) or raises.
    load HOST PORT USER PASSWORD SOURCE SECONDS WORKERS STOPFILE
        WORKERS threads, each one session after another (login, RETR small.bin, QUIT) until
        SECONDS pass or STOPFILE exists; prints "ok=N failed=M" and the failures.
"""

import ftplib
import io
import os
import sys
import threading
import time


class ResumingFTP_TLS(ftplib.FTP_TLS):
    """ftplib.FTP_TLS whose protected data connections resume the control session (the
    server requires it, as vsftpd's require_ssl_reuse does)."""

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(
                conn, server_hostname=self.host, session=self.sock.session
            )
        return conn, size


def connect(host, port, user, password, source, tls):
    cls = ResumingFTP_TLS if tls else ftplib.FTP
    ftp = cls(timeout=20, source_address=(source, 0))
    ftp.connect(host, port)
    if tls:
        import ssl
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ftp.context = ctx
        ftp.login(user, password)
        ftp.prot_p()
    else:
        ftp.login(user, password)
    return ftp


def session(host, port, user, password, source, mode, passive, name):
    ftp = connect(host, int(port), user, password, source, mode == "tls")
    payload = os.urandom(64 * 1024)
    if passive == "epsv":
        # ftplib uses EPSV only over IPv6; ask for it explicitly.
        def makepasv():
            reply = ftp.sendcmd("EPSV")
            return host, ftplib.parse229(reply, ftp.sock.getpeername())[1]

        ftp.makepasv = makepasv
    ftp.storbinary(f"STOR {name}", io.BytesIO(payload))
    got = io.BytesIO()
    ports = []
    real = ftp.makepasv

    def recording():
        h, p = real()
        ports.append(p)
        return h, p

    ftp.makepasv = recording
    ftp.retrbinary(f"RETR {name}", got.write)
    ftp.quit()
    assert got.getvalue() == payload, "downloaded bytes differ"
    print(f"ok {ports[0]}")


def load(host, port, user, password, source, seconds, workers, stopfile):
    deadline = time.monotonic() + float(seconds)
    counts = {"ok": 0, "failed": 0}
    failures = []
    lock = threading.Lock()

    def worker():
        while time.monotonic() < deadline and not os.path.exists(stopfile):
            try:
                ftp = connect(host, int(port), user, password, source, False)
                got = io.BytesIO()
                ftp.retrbinary("RETR small.bin", got.write)
                try:
                    ftp.quit()
                except ftplib.all_errors:
                    # The transfer is what counts; a 421 to QUIT from a node that is
                    # shutting down loses nothing.
                    pass
                if len(got.getvalue()) != 4096:
                    raise RuntimeError(f"short download: {len(got.getvalue())} bytes")
                with lock:
                    counts["ok"] += 1
            except Exception as exc:  # noqa: BLE001 - every failure is reported
                with lock:
                    counts["failed"] += 1
                    failures.append(f"{time.strftime('%H:%M:%S')} {type(exc).__name__}: {exc}")
            time.sleep(0.02)

    threads = [threading.Thread(target=worker) for _ in range(int(workers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"ok={counts['ok']} failed={counts['failed']}")
    for f in failures[:20]:
        print(f)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "session":
        session(*args)
    elif mode == "load":
        load(*args)
    else:
        sys.exit(f"unknown mode {mode}")
