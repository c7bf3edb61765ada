"""Test PKI made with the openssl CLI: a CA, a broker certificate for 127.0.0.1, client
certificates, and a rogue CA whose certificates the broker and the gateway must refuse."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _key(cwd: Path, name: str) -> None:
    _run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f"{name}.key", cwd=cwd)


def _ca(cwd: Path, name: str) -> None:
    _key(cwd, name)
    _run("req", "-x509", "-new", "-key", f"{name}.key", "-out", f"{name}.crt", "-days", "2", "-subj", f"/CN={name}",
         cwd=cwd)


def _signed(cwd: Path, name: str, ca: str, cn: str, san: str | None = None) -> None:
    _key(cwd, name)
    _run("req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=cwd)
    ext = cwd / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    _run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
         "-out", f"{name}.crt", "-days", "2", "-extfile", str(ext), cwd=cwd)


@dataclass
class Pki:
    dir: Path

    def __getattr__(self, name: str) -> Path:  # pki.ca_crt → dir/ca.crt
        stem, _, ext = name.rpartition("_")
        return self.dir / f"{stem}.{ext}"


def make_pki(where: Path) -> Pki:
    where.mkdir(parents=True, exist_ok=True)
    _ca(where, "ca")
    _ca(where, "rogue")
    _signed(where, "server", "ca", "localhost", "IP:127.0.0.1,DNS:localhost")
    _signed(where, "client", "ca", "gw1")
    _signed(where, "hist", "ca", "hist")
    _signed(where, "intruder", "rogue", "gw1")
    for p in where.iterdir():
        p.chmod(0o644)
    return Pki(where)
