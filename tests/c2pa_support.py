"""Pictures with real C2PA manifests, signed here by a throwaway certificate authority (``c2pa-python`` and
``cryptography``): a signature that verifies from a signer no trust list knows, as most will be."""

from __future__ import annotations

import datetime
import io

import numpy as np
from PIL import Image


def _name(common_name: str) -> object:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "facesearch tests"),
        ]
    )


def _certificates() -> tuple[bytes, bytes]:
    """A signing certificate chain (leaf, then root) as PEM, and the leaf's private key as PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = datetime.datetime.now(datetime.UTC)
    root_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    unused = ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement", "encipher_only")
    usage = dict.fromkeys((*unused, "decipher_only"), False)
    root = (
        x509.CertificateBuilder()
        .subject_name(_name("Test Root CA"))  # type: ignore[arg-type]
        .issuer_name(_name("Test Root CA"))  # type: ignore[arg-type]
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=False, key_cert_sign=True, crl_sign=True, **usage), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("Test Newsroom Signer"))  # type: ignore[arg-type]
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **usage), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    chain = leaf.public_bytes(serialization.Encoding.PEM) + root.public_bytes(serialization.Encoding.PEM)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return chain, private


def signed_jpeg(rgb: np.ndarray, title: str = "picture.jpg") -> bytes:
    """``rgb`` as a JPEG carrying a C2PA manifest (created by a digital capture), signed by a test signer."""
    import c2pa

    chain, private = _certificates()
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(b"es256", chain, private, None))
    manifest = {
        "claim_generator_info": [{"name": "facesearch-tests", "version": "1.0"}],
        "title": title,
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture",
                        }
                    ]
                },
            }
        ],
    }
    source, signed = io.BytesIO(), io.BytesIO()
    Image.fromarray(rgb).save(source, "JPEG", quality=90)
    source.seek(0)
    with c2pa.Builder(manifest) as builder:
        builder.sign(signer, "image/jpeg", source, signed)
    return signed.getvalue()
