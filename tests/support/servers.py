"""Real CalDAV servers on 127.0.0.1 behind one interface, for integration tests.

The sanitizer must work against more than one server implementation, and over
TLS with real certificate checking, so the tests run the same scenarios against
Radicale (strict Basic auth), Xandikos over plain HTTP (accepts any
credentials) and Xandikos over HTTPS with a CA we generate (real Basic auth and
real certificate verification).
"""

from __future__ import annotations

import abc
import datetime
import hashlib
import ipaddress
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
from base64 import b64encode
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from demo.embedded_server import (
    LOOPBACK,
    DavResponse,
    EmbeddedRadicale,
    ServerStartError,
    dav_request,
    find_free_port,
    mkcalendar,
    stop_process,
    wait_for_server,
)

__all__ = [
    "OPTIONAL_SERVER_KINDS",
    "SERVER_KINDS",
    "CalDAVServer",
    "RadicaleServer",
    "TestPKI",
    "XandikosServer",
    "generate_test_pki",
    "make_server",
]

SERVER_KINDS: tuple[str, ...] = ("radicale", "xandikos", "xandikos-tls")
# Run only when named in CALDAV_SERVERS (or by tests/test_google_suites.py): Radicale behind
# tests/google_sim.py's Google-like proxy, with a local OAuth token endpoint.
OPTIONAL_SERVER_KINDS: tuple[str, ...] = ("google",)
_START_ATTEMPTS = 5
# Xandikos --autocert regenerates any certificate expiring within 30 days,
# which would silently replace ours; stay well beyond that.
_CERT_LIFETIME = datetime.timedelta(days=365)


class CalDAVServer(abc.ABC):
    """What a test needs from a server: where it is, how to log in, how to make calendars."""

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """Kind of server, as used in CALDAV_SERVERS and test ids."""

    @property
    @abc.abstractmethod
    def enforces_auth(self) -> bool:
        """Whether wrong credentials are refused (plain Xandikos accepts anything)."""

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """Server root, ending in ``/``."""

    @property
    @abc.abstractmethod
    def username(self) -> str:
        """User to authenticate as."""

    @property
    @abc.abstractmethod
    def password(self) -> str:
        """That user's password."""

    @property
    def ca_file(self) -> str | None:
        """CA bundle the client must trust for TLS, or None for plain HTTP."""
        return None

    @property
    @abc.abstractmethod
    def principal_url(self) -> str:
        """The user's principal URL (what current-user-principal points to)."""

    @property
    @abc.abstractmethod
    def calendar_home_url(self) -> str:
        """Where new calendars go, so clients that list the calendar home find them."""

    @abc.abstractmethod
    def start(self) -> None:
        """Start the server and return once it answers an authenticated PROPFIND."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop the server and remove its temporary files."""

    @property
    def auth(self) -> tuple[str, str]:
        """Credentials as a tuple, the shape most HTTP clients take."""
        return (self.username, self.password)

    def ssl_context(self) -> ssl.SSLContext | None:
        """A verifying TLS context trusting exactly ``ca_file``, or None for HTTP."""
        if self.ca_file is None:
            return None
        return ssl.create_default_context(cafile=self.ca_file)

    def create_calendar(self, slug: str, displayname: str) -> str:
        """MKCALENDAR ``calendar_home_url + slug + "/"`` and return that URL."""
        return mkcalendar(
            f"{self.calendar_home_url}{slug}/",
            displayname,
            auth=self.auth,
            ssl_context=self.ssl_context(),
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> DavResponse:
        """Send a request as this server's user (or ``auth``), trusting its CA."""
        return dav_request(
            method,
            url,
            auth=auth if auth is not None else self.auth,
            body=body,
            headers=headers,
            ssl_context=self.ssl_context(),
        )

    def __enter__(self) -> Self:
        """Start on entry."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Always stop."""
        self.stop()

    def __repr__(self) -> str:
        """Name the kind, which is what matters in test ids and failures."""
        return f"<{type(self).__name__} {self.name}>"


class RadicaleServer(CalDAVServer):
    """The product's own EmbeddedRadicale, so tests exercise the demo launcher too."""

    @property
    def name(self) -> str:
        """``radicale``."""
        return "radicale"

    @property
    def enforces_auth(self) -> bool:
        """Radicale always checks the htpasswd file."""
        return True

    def __init__(self, username: str = "advocate") -> None:
        """Wrap an EmbeddedRadicale with a temporary store."""
        self.embedded = EmbeddedRadicale(username=username)
        if os.environ.get("TEST_CLOCK_SHIFT_DAYS"):  # make test-shifted
            # Radicale forgets a sync token whose file is older than max_sync_token_age by its
            # clock; with the clock moved a year ahead and files stamped by the kernel's, every
            # token would look a year old. Not a date the product depends on: keep them.
            command = self.embedded._command

            def kept_tokens(port: int, htpasswd: Path) -> list[str]:
                return [*command(port, htpasswd), "--storage-max-sync-token-age",
                        str(10 * 366 * 86400)]

            self.embedded._command = kept_tokens  # type: ignore[method-assign]

    @property
    def url(self) -> str:
        """Server root."""
        return self.embedded.url

    @property
    def username(self) -> str:
        """Radicale user."""
        return self.embedded.username

    @property
    def password(self) -> str:
        """Radicale password."""
        return self.embedded.password

    @property
    def principal_url(self) -> str:
        """``/USER/``."""
        return self.embedded.principal_url

    @property
    def calendar_home_url(self) -> str:
        """Radicale's calendar home is the principal itself."""
        return self.embedded.principal_url

    def start(self) -> None:
        """Start Radicale."""
        self.embedded.start()

    def stop(self) -> None:
        """Stop Radicale and drop its store."""
        self.embedded.stop()


class TestPKI:
    """Paths of a throw-away CA and a server certificate it signed."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, ca_cert: Path, server_cert: Path, server_key: Path) -> None:
        """Record where the PEM files are."""
        self.ca_cert = ca_cert
        self.server_cert = server_cert
        self.server_key = server_key


def _write_private(path: Path, data: bytes) -> None:
    """Write key material readable by the owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def generate_test_pki(
    directory: Path,
    *,
    cert_name: str = "server.crt",
    key_name: str = "server.key",
) -> TestPKI:
    """Create a CA and a server certificate for 127.0.0.1 and localhost.

    A real CA (rather than a self-signed leaf) lets the client verify the chain
    and the hostname exactly as it would in production.
    """
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    not_before = now - datetime.timedelta(days=730)  # also valid in a run with the date moved

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "calendar-sanitizer test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(now + _CERT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOOPBACK)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(now + _CERT_LIFETIME)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(LOOPBACK)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    pki = TestPKI(directory / "ca.crt", directory / cert_name, directory / key_name)
    pki.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_private(
        pki.server_key,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return pki


class XandikosServer(CalDAVServer):
    """Xandikos on a free 127.0.0.1 port, over HTTP or over HTTPS with Basic auth.

    For TLS, Xandikos's own ``--autocert``/``--htpasswd`` options are used:
    ``--autocert`` reuses ``<state-dir>/certs/selfsigned.{crt,key}`` when present
    and not close to expiry, so our CA-signed certificate is placed there.
    ``--htpasswd`` accepts ``{SHA}`` entries without extra packages (bcrypt
    entries would need the ``bcrypt`` module), and it refuses to run without TLS.
    """

    def __init__(self, *, tls: bool = False, username: str = "advocate") -> None:
        """Remember settings; the password is random per instance."""
        self.tls = tls
        self._username = username
        self._password = secrets.token_urlsafe(12)
        self._dir: Path | None = None
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._pki: TestPKI | None = None

    @property
    def name(self) -> str:
        """``xandikos`` or ``xandikos-tls``."""
        return "xandikos-tls" if self.tls else "xandikos"

    @property
    def enforces_auth(self) -> bool:
        """Only the TLS variant checks passwords; plain HTTP accepts any."""
        return self.tls

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The running server process, or None."""
        return self._proc

    @property
    def url(self) -> str:
        """Server root."""
        if self._port is None:
            raise RuntimeError(f"{self.name} is not running")
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{LOOPBACK}:{self._port}/"

    @property
    def username(self) -> str:
        """User name (also the principal path)."""
        return self._username

    @property
    def password(self) -> str:
        """Password (only checked by the TLS variant)."""
        return self._password

    @property
    def ca_file(self) -> str | None:
        """The generated CA certificate for the TLS variant."""
        return str(self._pki.ca_cert) if self._pki is not None else None

    @property
    def principal_url(self) -> str:
        """``/USER/`` as given by ``--current-user-principal``."""
        return f"{self.url}{self._username}/"

    @property
    def calendar_home_url(self) -> str:
        """Xandikos advertises ``/USER/calendars/`` as calendar-home-set."""
        return f"{self.principal_url}calendars/"

    @property
    def work_dir(self) -> Path:
        """Temporary directory holding data, state, certificates and the log."""
        if self._dir is None:
            raise RuntimeError(f"{self.name} has no work dir before start()")
        return self._dir

    @property
    def log_path(self) -> Path:
        """Xandikos's stdout/stderr."""
        return self.work_dir / "xandikos.log"

    def _command(self, port: int) -> list[str]:
        """Command line for one start attempt."""
        cmd = [
            sys.executable,
            "-m",
            "xandikos",
            "serve",
            "-d",
            str(self.work_dir / "data"),
            "--autocreate",
            "--current-user-principal",
            f"/{self._username}/",
            "-l",
            LOOPBACK,
            "-p",
            str(port),
            "--no-detect-systemd",
            "--state-dir",
            str(self.work_dir / "state"),
        ]
        if self.tls:
            cmd += ["--autocert", "--htpasswd", str(self.work_dir / "htpasswd")]
        return cmd

    def _prepare_tls(self) -> None:
        """Put our certificate where --autocert looks and write the htpasswd file."""
        certs = self.work_dir / "state" / "certs"
        certs.mkdir(parents=True, mode=0o700)
        self._pki = generate_test_pki(certs, cert_name="selfsigned.crt", key_name="selfsigned.key")
        digest = b64encode(hashlib.sha1(self._password.encode()).digest()).decode("ascii")
        _write_private(self.work_dir / "htpasswd", f"{self._username}:{{SHA}}{digest}\n".encode())

    def _probe(self) -> int | None:
        """Status of an authenticated Depth-0 PROPFIND on the principal."""
        return dav_request(
            "PROPFIND",
            self.principal_url,
            auth=self.auth,
            headers={"Depth": "0"},
            ssl_context=self.ssl_context(),
            timeout=2.0,
        ).status

    def start(self) -> None:
        """Start Xandikos, retrying on another port if the chosen one was taken."""
        if self._proc is not None:
            raise RuntimeError(f"{self.name} is already started")
        self._dir = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        try:
            if self.tls:
                self._prepare_tls()
            for attempt in range(_START_ATTEMPTS):
                port = find_free_port()
                with self.log_path.open("wb") as log:
                    self._proc = subprocess.Popen(
                        self._command(port),
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        cwd=self.work_dir,
                        start_new_session=True,
                    )
                self._port = port
                try:
                    wait_for_server(
                        self._proc, self._probe, self.log_path, what=f"{self.name} on port {port}",
                        port=port,
                    )
                    return
                except ServerStartError as exc:
                    self._reap()
                    if not exc.port_in_use or attempt == _START_ATTEMPTS - 1:
                        raise
        except BaseException:
            self.stop()
            raise

    def _reap(self) -> None:
        """Stop the child, if any."""
        if self._proc is not None:
            stop_process(self._proc)
        self._proc = None
        self._port = None

    def stop(self) -> None:
        """Stop Xandikos and delete its directory; idempotent."""
        self._reap()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
            self._pki = None


def make_server(kind: str) -> CalDAVServer:
    """Build an unstarted server of the given kind (one of SERVER_KINDS)."""
    if kind == "radicale":
        return RadicaleServer()
    if kind == "xandikos":
        return XandikosServer(tls=False)
    if kind == "xandikos-tls":
        return XandikosServer(tls=True)
    if kind == "google":
        from tests.support.google_sim import GoogleServer  # noqa: PLC0415 - it imports this module

        return GoogleServer()
    raise ValueError(f"unknown CalDAV server kind {kind!r}; choose from {', '.join(SERVER_KINDS)}")
