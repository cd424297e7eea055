"""XML digital signatures of CAP alerts: enveloped XML-DSig, RSA-SHA256, as CAP 1.2 (3.3.2.1) allows.

Every alert Haechi stores is signed with the installation's RSA key, so an aggregator reading the
feed over plain HTTP (or a copy passed along by anyone) can tell it is ours and unchanged: the
``<Signature>`` is the last child of ``<alert>`` (the CAP XSD's ``xs:any`` in the XML-DSig
namespace), its one reference (``URI=""``) the whole document, exclusive canonicalisation. The
``<KeyInfo>`` names the key by the URL it is published at (``/alerts/signing-key.pem``) and never
carries the key itself: a verifier uses the key it got from us, so a forger's embedded key proves
nothing. ``xmlsec1 --verify --pubkey-pem KEY FILE`` checks a message (docs/alerts.md).

The private key is a PEM file named by ``HAECHI_CAP_SIGNING_KEY``; the embedded default generates
one there on first start (never committed: see .gitignore).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from signxml import CanonicalizationMethod, DigestAlgorithm, SignatureMethod, XMLSigner
from signxml.algorithms import SignatureConstructionMethod

from haechi.core.errors import InvalidInput

log = logging.getLogger(__name__)

DSIG = "http://www.w3.org/2000/09/xmldsig#"
#: NIST SP 800-57 gives RSA-3072 128-bit security, enough beyond 2030; Google asks for a new key
#: at least every two years anyway.
KEY_BITS = 3072
PUBLIC_KEY_MEDIA = "application/x-pem-file"

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


@dataclass(frozen=True)
class Signer:
    """The installation's signing key, and what it shows the world (the public key as PEM)."""

    key: rsa.RSAPrivateKey

    @classmethod
    def from_file(cls, path: str | Path, *, create: bool = False) -> Signer:
        """The key in the PEM file at ``path``; made there first (mode 0600) when ``create`` and missing."""
        path = Path(path)
        if not path.exists() and create:
            try:
                _write_new_key(path)
            except FileExistsError:  # another process of this installation made it just now
                pass
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise InvalidInput(f"CAP signing key {path}: {exc}", field="cap_signing_key") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise InvalidInput(f"CAP signing key {path} is not an RSA key (RSA-SHA256 needs one)",
                               field="cap_signing_key")
        return cls(key)

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, xml: bytes, key_name: str) -> bytes:
        """``xml`` (a CAP document, unsigned) with an enveloped RSA-SHA256 signature of all of it;
        ``key_name`` (where the public key is published) is its ``<KeyName>``."""
        root = etree.fromstring(xml, _PARSER)
        signer = XMLSigner(
            method=SignatureConstructionMethod.enveloped, signature_algorithm=SignatureMethod.RSA_SHA256,
            digest_algorithm=DigestAlgorithm.SHA256,
            c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0)
        signed = signer.sign(root, key=self.key, key_info=_key_info(key_name))
        return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def is_signed(xml: bytes | str) -> bool:
    """Whether the document carries an XML-DSig ``<Signature>`` as a child of its root."""
    data = xml.encode() if isinstance(xml, str) else xml
    return etree.fromstring(data, _PARSER).find(f"{{{DSIG}}}Signature") is not None


def _key_info(key_name: str) -> etree._Element:
    info = etree.Element(f"{{{DSIG}}}KeyInfo", nsmap={"ds": DSIG})
    etree.SubElement(info, f"{{{DSIG}}}KeyName").text = key_name
    return info


def _write_new_key(path: Path) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others
    with os.fdopen(descriptor, "wb") as f:
        f.write(pem)
    log.warning("made a new CAP signing key at %s: aggregators need its public key (/alerts/signing-key.pem)", path)
