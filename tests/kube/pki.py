"""Certificates for the fake API server, made with the openssl command line.

    make_ca(dir, name)                      -> (ca.crt, ca.key)
    make_server_cert(dir, ca, hosts)        -> (server.crt, server.key)
    make_client_cert(dir, ca, cn, groups)   -> (NAME.crt, NAME.key)

Keys are EC P-256 (fast to make); certificates last a day. Everything is
written under `dir`; nothing else is touched.
"""
import ipaddress
import os
import subprocess

OPENSSL = "openssl"


def _run(*args, cwd=None):
    r = subprocess.run([OPENSSL, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, cwd=cwd, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {r.stderr.strip()}")


def _key(path):
    _run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
    os.chmod(path, 0o600)


def make_ca(dir, name="fake-kube-ca"):
    """A self-signed CA; returns (cert path, key path)."""
    os.makedirs(dir, exist_ok=True)
    crt, key = os.path.join(dir, f"{name}.crt"), os.path.join(dir, f"{name}.key")
    _key(key)
    _run("req", "-x509", "-new", "-key", key, "-out", crt, "-days", "1", "-subj", f"/CN={name}",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return crt, key


def _sign(dir, ca, name, subj, extensions):
    crt, key = os.path.join(dir, f"{name}.crt"), os.path.join(dir, f"{name}.key")
    csr, ext = os.path.join(dir, f"{name}.csr"), os.path.join(dir, f"{name}.ext")
    _key(key)
    _run("req", "-new", "-key", key, "-out", csr, "-subj", subj)
    with open(ext, "w") as f:
        f.write(extensions)
    _run("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
         "-out", crt, "-days", "1", "-extfile", ext)
    os.unlink(csr)
    os.unlink(ext)
    return crt, key


def make_server_cert(dir, ca, hosts=("127.0.0.1", "localhost"), name="server"):
    """A TLS server certificate for `hosts` (IP addresses get IP SANs)."""
    sans = []
    for h in hosts:
        try:
            ipaddress.ip_address(h)
            sans.append(f"IP:{h}")
        except ValueError:
            sans.append(f"DNS:{h}")
    return _sign(dir, ca, name, f"/CN={hosts[0]}",
                 "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                 "extendedKeyUsage=serverAuth\nsubjectAltName=" + ",".join(sans) + "\n")


def make_client_cert(dir, ca, cn, groups=(), name=None):
    """A client certificate: CN is the user, O entries the groups (as Kubernetes reads them)."""
    subj = "".join(f"/O={g}" for g in groups) + f"/CN={cn}"
    return _sign(dir, ca, name or f"client-{cn}", subj,
                 "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                 "extendedKeyUsage=clientAuth\n")
