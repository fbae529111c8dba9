"""``python -m sandbox.oidc``: the sandbox's OIDC issuer, standing in for a CI provider's.

It publishes one RSA signing key (``DIR/identity/issuer-key.pem``) the way GitHub Actions or GitLab
publish theirs: ``/.well-known/openid-configuration`` names the issuer and ``jwks_uri``, ``/jwks``
serves the key set. It only publishes; tokens are signed by ``python -m sandbox token``
(:func:`sandbox.identity.token`) with the same key, as a CI job would be handed one. It listens on
127.0.0.1, on the port given (0: a free one, written to ``--port-file`` once listening), and its
issuer URL is ``http://127.0.0.1:<port>``.

:func:`serve` runs it on a thread of the caller's, for tests.
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

from sandbox import identity

HOST = "127.0.0.1"


def _handler(jwks: dict[str, Any]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            port = cast("tuple[str, int]", self.server.server_address)[1]  # an AF_INET server's
            issuer = f"http://{HOST}:{port}"
            if self.path == "/jwks":
                self._json(jwks)
            elif self.path == "/.well-known/openid-configuration":
                self._json(
                    {
                        "issuer": issuer,
                        "jwks_uri": f"{issuer}/jwks",
                        "id_token_signing_alg_values_supported": ["RS256"],
                        "response_types_supported": ["id_token"],
                        "subject_types_supported": ["public"],
                        "claims_supported": ["sub", "actor", "aud", "exp", "iat", "iss", "jti"],
                    }
                )
            else:
                self.send_error(404)

        def _json(self, document: dict[str, Any]) -> None:
            body = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per key fetch would drown the log

    return Handler


def server(key_file: Path, port: int = 0) -> ThreadingHTTPServer:
    """The issuer publishing ``key_file``'s public key, bound to 127.0.0.1:``port`` (not yet serving)."""
    jwks = {"keys": [identity.public_jwk(identity.read_private_key(key_file))]}
    return ThreadingHTTPServer((HOST, port), _handler(jwks))


def serve(key_file: Path, port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """The issuer serving on a daemon thread, and its URL; ``shutdown()`` the server to stop it."""
    running = server(key_file, port)
    threading.Thread(target=running.serve_forever, daemon=True, name="oidc").start()
    return running, f"http://{HOST}:{running.server_port}"


def main() -> None:
    """``python -m sandbox.oidc --key FILE [--port N] [--port-file FILE]``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--key", type=Path, required=True, help="The issuer's RSA private key (PEM).")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", type=Path, help="Where to write the port once listening.")
    args = parser.parse_args()
    running = server(args.key, args.port)
    if args.port_file is not None:
        args.port_file.write_text(f"{running.server_port}\n", encoding="ascii")
    running.serve_forever()


if __name__ == "__main__":
    main()
