#!/usr/bin/env python3
"""Checks a container image tarball made by image/build.sh, then runs its binary.

    python3 tests/image.py IMAGE.tar

The image must be what deploy/base/deployment.yaml runs: tagged with the
reference it names, user 65532:65532, entrypoint /defender, command `serve`,
port 8443, OCI labels matching Cargo.toml, and one layer holding only the
static binary (/defender, 0555, root) and /tmp (1777, root). The binary taken
out of the image must print Cargo.toml's version, serve `/readyz` on
127.0.0.1 with a development certificate (as user 65532 when run as root),
and exit cleanly on SIGTERM. Exits 1 saying what is wrong.
"""

import gzip
import hashlib
import io
import json
import os
import platform
import re
import signal
import ssl
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USER = "65532:65532"
# Bounds on waiting for the server, not expectations of its speed.
STARTUP_SECONDS = 60
SHUTDOWN_SECONDS = 60

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
    return condition


def expected_labels():
    package = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]
    return {
        "org.opencontainers.image.title": "defender",
        "org.opencontainers.image.version": package["version"],
        "org.opencontainers.image.source": package["repository"],
        "org.opencontainers.image.licenses": package["license"],
    }


def deployed_reference():
    """The image deploy/base/deployment.yaml runs."""
    text = (ROOT / "deploy/base/deployment.yaml").read_text()
    references = re.findall(r"^\s*image:\s*(\S+)\s*$", text, re.MULTILINE)
    if len(references) != 1:
        sys.exit(f"deploy/base/deployment.yaml names {len(references)} images, expected one")
    return references[0]


def image_architecture():
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def check_config(config):
    check(config.get("os") == "linux", f"os is {config.get('os')!r}, expected linux")
    check(
        config.get("architecture") == image_architecture(),
        f"architecture is {config.get('architecture')!r}, expected {image_architecture()!r}",
    )
    settings = config.get("config", {})
    check(settings.get("User") == USER, f"user is {settings.get('User')!r}, expected {USER}")
    check(settings.get("Entrypoint") == ["/defender"], f"entrypoint is {settings.get('Entrypoint')!r}")
    check(settings.get("Cmd") == ["serve"], f"command is {settings.get('Cmd')!r}")
    check(settings.get("ExposedPorts") == {"8443/tcp": {}}, f"exposed ports are {settings.get('ExposedPorts')!r}")
    check(settings.get("Labels") == expected_labels(), f"labels are {settings.get('Labels')!r}, expected {expected_labels()!r}")


def check_layer(layer):
    """The layer's entries; returns the binary's bytes."""
    entries = {member.name.removeprefix("./").rstrip("/"): member for member in layer.getmembers()}
    check(sorted(entries) == ["defender", "tmp"], f"the layer holds {sorted(entries)}, expected defender and tmp")
    binary = entries.get("defender")
    if check(binary is not None and binary.isfile(), "no file /defender"):
        check(binary.mode == 0o555, f"/defender has mode {binary.mode:o}, expected 555")
        check((binary.uid, binary.gid) == (0, 0), f"/defender is owned by {binary.uid}:{binary.gid}, expected 0:0")
    tmp = entries.get("tmp")
    if check(tmp is not None and tmp.isdir(), "no directory /tmp"):
        check(tmp.mode == 0o1777, f"/tmp has mode {tmp.mode:o}, expected 1777")
        check((tmp.uid, tmp.gid) == (0, 0), f"/tmp is owned by {tmp.uid}:{tmp.gid}, expected 0:0")
    return layer.extractfile(binary).read() if binary is not None and binary.isfile() else None


def is_static_elf(binary):
    """An ELF executable without a program interpreter (PT_INTERP): it needs no libc in the image."""
    if binary[:4] != b"\x7fELF" or binary[4] != 2:
        return False
    order = "little" if binary[5] == 1 else "big"
    number = lambda offset, size: int.from_bytes(binary[offset : offset + size], order)  # noqa: E731
    table, entry_size, count = number(0x20, 8), number(0x36, 2), number(0x38, 2)
    return all(number(table + i * entry_size, 4) != 3 for i in range(count))


def read_image(path):
    """The config and the binary, after checking the tarball against deployment.yaml."""
    with tarfile.open(path) as image:
        manifest = json.load(image.extractfile("manifest.json"))
        if not check(len(manifest) == 1, f"the tarball holds {len(manifest)} images, expected one"):
            return None
        (entry,) = manifest
        reference = deployed_reference()
        check(entry.get("RepoTags") == [reference], f"the image is tagged {entry.get('RepoTags')}, expected [{reference}]")
        config = json.load(image.extractfile(entry["Config"]))
        check_config(config)
        if not check(len(entry["Layers"]) == 1, f"{len(entry['Layers'])} layers, expected one"):
            return None
        compressed = image.extractfile(entry["Layers"][0]).read()
    # The config names the layer by the digest of its uncompressed tar.
    plain = gzip.decompress(compressed)
    digest = "sha256:" + hashlib.sha256(plain).hexdigest()
    check(config["rootfs"]["diff_ids"] == [digest], f"the layer's digest {digest} is not the config's {config['rootfs']['diff_ids']}")
    with tarfile.open(fileobj=io.BytesIO(plain)) as layer:
        return check_layer(layer)


def as_image_user():
    """Runs a child as the image's user when the tests run as root."""
    if os.getuid() != 0:
        return None
    uid, gid = (int(part) for part in USER.split(":"))

    def drop():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    return drop


def run_binary(binary, work):
    path = work / "defender"
    path.write_bytes(binary)
    path.chmod(0o555)
    demote = as_image_user()
    if demote:
        os.chown(work, *(int(part) for part in USER.split(":")))

    version = expected_labels()["org.opencontainers.image.version"]
    shown = subprocess.run([path, "--version"], capture_output=True, text=True, preexec_fn=demote)
    check(shown.returncode == 0, f"defender --version exited {shown.returncode}: {shown.stderr}")
    check(shown.stdout.split() == ["defender", version], f"defender --version printed {shown.stdout!r}, expected 'defender {version}'")

    certs = work / "certs"
    made = subprocess.run([path, "certs", "--out", certs], capture_output=True, text=True, preexec_fn=demote)
    if not check(made.returncode == 0, f"defender certs exited {made.returncode}: {made.stderr}"):
        return

    environment = {key: value for key, value in os.environ.items() if key not in ("KUBERNETES_SERVICE_HOST", "KUBECONFIG")}
    server = subprocess.Popen(
        [path, "serve", "--listen", "127.0.0.1:0", "--log-format", "json",
         "--tls-cert", certs / "tls.crt", "--tls-key", certs / "tls.key", "--shutdown-delay", "0s"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=environment, preexec_fn=demote,
    )
    log, address, earlier_failures = [], threading.Event(), len(failures)
    bound = {}

    def read_log():
        for line in server.stderr:
            log.append(line)
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("message") == "Defender is serving":
                bound["addr"] = entry.get("addr")
                address.set()

    threading.Thread(target=read_log, daemon=True).start()
    try:
        if not check(address.wait(STARTUP_SECONDS) and bound.get("addr"), "defender serve did not say where it serves"):
            return
        port = bound["addr"].rsplit(":", 1)[1]
        context = ssl.create_default_context(cafile=certs / "ca.crt")
        status = wait_until_ready(f"https://127.0.0.1:{port}/readyz", context, server)
        check(status == 200, f"/readyz answered {status}, expected 200")
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(SHUTDOWN_SECONDS)
            check(code == 0, f"defender serve exited {code} on SIGTERM")
        except subprocess.TimeoutExpired:
            server.kill()
            check(False, "defender serve did not stop on SIGTERM")
        if len(failures) > earlier_failures:
            sys.stderr.write("server log:\n" + "".join(log))


def wait_until_ready(url, context, server):
    """Polls /readyz until it answers 200, the server exits, or STARTUP_SECONDS pass; the last status."""
    deadline, status = time.monotonic() + STARTUP_SECONDS, None
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(url, context=context, timeout=5) as answer:
                status = answer.status
        except urllib.error.HTTPError as error:
            status = error.code
        except (urllib.error.URLError, OSError) as error:
            status = f"no answer ({error})"
        if status == 200:
            return status
        time.sleep(0.1)
    return status


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: python3 tests/image.py IMAGE.tar")
    binary = read_image(sys.argv[1])
    if binary is not None and check(is_static_elf(binary), "/defender is not a static ELF executable"):
        with tempfile.TemporaryDirectory(prefix="defender-image-test-") as work:
            run_binary(binary, Path(work))
    for failure in failures:
        print(f"image: {failure}", file=sys.stderr)
    if failures:
        sys.exit(1)
    print(f"image {sys.argv[1]}: config, labels, layer and the binary's --version and /readyz as expected")


if __name__ == "__main__":
    main()
