"""Start to ready: how long a release `defender serve` takes from being
spawned to its first 200 on /readyz (embedded policies, given certificates,
no cluster access), over several starts. Prints the median and the slowest.

    cargo build --release --bin defender --examples && python3 bench/startup.py [RUNS]
"""
import http.client
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

DEFENDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "defender")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ready(port, context):
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=1)
    try:
        connection.request("GET", "/readyz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def one_start(certs, context):
    port = free_port()
    began = time.perf_counter()
    server = subprocess.Popen(
        [DEFENDER, "serve", "--listen", f"127.0.0.1:{port}", "--tls-cert", os.path.join(certs, "tls.crt"),
         "--tls-key", os.path.join(certs, "tls.key")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not ready(port, context):
            if server.poll() is not None:
                sys.exit(f"defender serve exited with {server.returncode}")
            if time.perf_counter() - began > 10:
                sys.exit("defender serve was not ready within 10 s")
            time.sleep(0.001)
        return (time.perf_counter() - began) * 1000
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    # Other work on the machine skews the figure: reported with it.
    load_before = " ".join(f"{load:.2f}" for load in os.getloadavg())
    with tempfile.TemporaryDirectory() as work:
        certs = os.path.join(work, "certs")
        subprocess.run([DEFENDER, "certs", "--out", certs], check=True, capture_output=True)
        context = ssl.create_default_context(cafile=os.path.join(certs, "ca.crt"))
        times = [one_start(certs, context) for _ in range(runs)]
    print(f"load average before {load_before}")
    print(f"start to ready over {runs} starts: median {statistics.median(times):.1f} ms, "
          f"slowest {max(times):.1f} ms")


if __name__ == "__main__":
    main()
