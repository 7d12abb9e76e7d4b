"""A throw-away certificate authority and signed PDFs, made at test time (all fictional)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko_certvalidator.registry import SimpleCertificateStore

from clinflow.packets.sample_docs import text_pdf

NOW = datetime.now(UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Clinflow Test Fixtures"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


@dataclass
class Identity:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def asn1_cert(self) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(self.cert.public_bytes(serialization.Encoding.DER))

    def asn1_key(self) -> asn1_keys.PrivateKeyInfo:
        der = self.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return asn1_keys.PrivateKeyInfo.load(der)


def make_ca(cn: str = "Fictional Test Root CA") -> Identity:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=3650))
        .not_valid_after(NOW + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Identity(key, cert)


def make_signer(
    ca: Identity,
    cn: str = "Fictional Signer",
    *,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> Identity:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - timedelta(days=1))
        .not_valid_after(not_after or NOW + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False),
            critical=True,
        )
        .sign(ca.key, hashes.SHA256())
    )
    return Identity(key, cert)


class _TimedSigner(signers.PdfSigner):
    """A PdfSigner whose signing session claims a given signing time."""

    def __init__(self, *args: Any, signing_time: datetime, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._signing_time = signing_time

    def init_signing_session(self, *args: Any, **kw: Any) -> Any:
        session = super().init_signing_session(*args, **kw)
        session.system_time = self._signing_time
        return session


def sign(
    pdf: bytes,
    signer: Identity,
    ca: Identity,
    *,
    field: str = "Signature1",
    signing_time: datetime | None = None,
) -> bytes:
    """``pdf`` with one more signature (an incremental update)."""
    simple = signers.SimpleSigner(
        signing_cert=signer.asn1_cert(),
        signing_key=signer.asn1_key(),
        cert_registry=SimpleCertificateStore.from_certs([ca.asn1_cert()]),
    )
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    meta = signers.PdfSignatureMetadata(field_name=field)
    out = io.BytesIO()
    if signing_time is None:
        signers.PdfSigner(meta, signer=simple).sign_pdf(writer, output=out)
    else:
        _TimedSigner(meta, signer=simple, signing_time=signing_time).sign_pdf(writer, output=out)
    return out.getvalue()


def unsigned_pdf() -> bytes:
    return text_pdf([["Statement of investigator", "Form FDA 1572", "Fictional content"]])


def rotate_first_page(pdf: bytes) -> bytes:
    """An incremental update after signing that changes the page (not a permitted change)."""
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    page["/Rotate"] = generic.NumberObject(90)
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def flip_signed_byte(pdf: bytes) -> bytes:
    """Change one byte inside the signed range (the document information's creator)."""
    pos = pdf.index(b"sample data")
    return pdf[:pos] + b"X" + pdf[pos + 1 :]


def write_bundle(directory: Path, *cas: Identity) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for i, ca in enumerate(cas):
        (directory / f"ca-{i}.pem").write_bytes(ca.pem)
    return directory


@dataclass
class Kit:
    ca: Identity
    other_ca: Identity
    signer: Identity
    expired_signer: Identity
    lapsed_signer: Identity

    @classmethod
    def create(cls) -> Kit:
        ca = make_ca()
        return cls(
            ca=ca,
            other_ca=make_ca("Fictional Unapproved CA"),
            signer=make_signer(ca),
            expired_signer=make_signer(
                ca,
                "Fictional Expired Signer",
                not_before=NOW - timedelta(days=800),
                not_after=NOW - timedelta(days=400),
            ),
            lapsed_signer=make_signer(
                ca,
                "Fictional Lapsed Signer",
                not_before=NOW - timedelta(days=800),
                not_after=NOW - timedelta(days=10),
            ),
        )


def pdf_signature_rule_cases() -> dict[str, tuple[Any, Any]]:
    """For each PDF_SIGNATURE_* rule: (a case where it fires, a clean case), returning codes."""
    from clinflow.pdf_signatures import TrustBundle, pdf_signature_findings

    kit = Kit.create()
    trust = TrustBundle.from_pem(kit.ca.pem)

    def codes(pdf: bytes, *, required: bool = True, bundle: TrustBundle = trust) -> set[str]:
        return {f.code for f in pdf_signature_findings(pdf, required=required, trust=bundle)}

    def good() -> bytes:
        return sign(unsigned_pdf(), kit.signer, kit.ca)

    return {
        "PDF_SIGNATURE_MISSING": (lambda: codes(unsigned_pdf()), lambda: codes(good())),
        "PDF_SIGNATURE_INVALID": (
            lambda: codes(flip_signed_byte(good())),
            lambda: codes(good()),
        ),
        "PDF_SIGNATURE_MODIFIED": (
            lambda: codes(rotate_first_page(good())),
            lambda: codes(sign(good(), kit.signer, kit.ca, field="Signature2")),
        ),
        "PDF_SIGNATURE_UNTRUSTED": (
            lambda: codes(good(), bundle=TrustBundle.from_pem(kit.other_ca.pem)),
            lambda: codes(good()),
        ),
        "PDF_SIGNATURE_EXPIRED": (
            lambda: codes(sign(unsigned_pdf(), kit.expired_signer, kit.ca)),
            lambda: codes(
                sign(
                    unsigned_pdf(),
                    kit.lapsed_signer,
                    kit.ca,
                    signing_time=NOW - timedelta(days=100),
                )
            ),
        ),
    }
