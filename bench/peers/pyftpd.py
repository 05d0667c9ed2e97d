"""pyftpdlib serving one directory to one user, in the foreground, for ftpgate-bench.

Usage: pyftpd.py DIR PORT PASV_LO PASV_HI USER PASSWORD CERT KEY
"""

import logging
import sys

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import TLS_FTPHandler
from pyftpdlib.servers import FTPServer


def main():
    directory, port, lo, hi, user, password, cert, key = sys.argv[1:9]
    authorizer = DummyAuthorizer()
    authorizer.add_user(user, password, directory, perm="elradfmwMT")
    handler = TLS_FTPHandler
    handler.authorizer = authorizer
    handler.passive_ports = range(int(lo), int(hi) + 1)
    handler.masquerade_address = None
    handler.certfile = cert
    handler.keyfile = key
    handler.tls_control_required = False
    handler.tls_data_required = False
    handler.banner = "pyftpdlib ready"
    logging.basicConfig(level=logging.WARNING)
    server = FTPServer(("127.0.0.1", int(port)), handler)
    server.max_cons = 5000
    server.max_cons_per_ip = 0
    print("pyftpdlib: listening on 127.0.0.1:%s" % port, flush=True)
    server.serve_forever(handle_exit=True)


if __name__ == "__main__":
    main()
