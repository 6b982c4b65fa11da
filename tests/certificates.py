"""A private certificate authority for the TLS tests, made at run time with ``cryptography``.

A company gateway's certificate is signed by the company's own CA, which no default trust store
holds: that is what the connection extra ``verify`` (the CA bundle's path) is for. Here:
``ca.pem`` (the test CA), ``server.pem`` (the server's certificate for 127.0.0.1 and localhost,
then the CA: the chain a server sends), ``server-key.pem``, and ``other-ca.pem``, a CA that signed
nothing here, for a bundle that does not vouch for the server. Nothing is downloaded.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class PrivateCA:
    """The PEM files of a test CA, the server certificate it signed, and an unrelated CA."""

    ca: Path
    server_chain: Path
    server_key: Path
    other_ca: Path

    def server_context(self) -> ssl.SSLContext:
        """A server ``SSLContext`` presenting the CA-signed certificate (for ``EmulatorServer``)."""
        return server_context(self.server_chain, self.server_key)


def server_context(chain: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain, key)
    return context


def make_private_ca(
    directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), days: int = 2
) -> PrivateCA:
    """Write ``ca.pem``, ``server.pem`` (chain), ``server-key.pem`` and ``other-ca.pem`` into
    ``directory``. The server certificate names ``hosts`` (IP addresses and DNS names)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _ca("taskstatus test CA", days)
    _, other_cert = _ca("taskstatus unrelated CA", days)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _server(server_key, ca_key, ca_cert, hosts, days)

    files = PrivateCA(
        ca=directory / "ca.pem",
        server_chain=directory / "server.pem",
        server_key=directory / "server-key.pem",
        other_ca=directory / "other-ca.pem",
    )
    files.ca.write_bytes(_pem(ca_cert))
    files.server_chain.write_bytes(_pem(server_cert) + _pem(ca_cert))
    files.other_ca.write_bytes(_pem(other_cert))
    files.server_key.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    files.server_key.chmod(0o600)
    return files


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _validity(builder: x509.CertificateBuilder, days: int) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return builder.not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(
        now + datetime.timedelta(days=days)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        key_encipherment=False,
        content_commitment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _ca(common_name: str, days: int) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed root (CA:TRUE, keyCertSign), as OpenSSL 3 and Python 3.13's strict checks want."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    return key, _validity(builder, days).sign(key, hashes.SHA256())


def _server(
    key: ec.EllipticCurvePrivateKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    hosts: tuple[str, ...],
    days: int,
) -> x509.Certificate:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    return _validity(builder, days).sign(ca_key, hashes.SHA256())
