"""Validates docker-compose.yml as far as a machine without a Docker engine can: it parses,
Kafka's image version equals the broker the tests run (scripts/kafka/pom.xml), and every
flag and environment variable given to a gatehouse service exists in the `--help` of the
subcommand it runs.

Usage: check_compose.py GATEHOUSE_BINARY   (prints "N passed, M failed")
"""

import re
import subprocess
import sys

import yaml


def main():
    binary = sys.argv[1]
    compose = yaml.safe_load(open("docker-compose.yml"))
    pom = open("scripts/kafka/pom.xml").read()
    kafka_version = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom).group(1)
    checks = []
    services = compose.get("services", {})
    checks.append(("services kafka, gatehouse and sink", {"kafka", "gatehouse", "sink"} <= set(services)))
    checks.append((f"kafka image is apache/kafka:{kafka_version}",
                   services.get("kafka", {}).get("image") == f"apache/kafka:{kafka_version}"))
    for name in ("gatehouse", "sink"):
        service = services.get(name, {})
        command = service.get("command", [])
        subcommand = command[0] if command else ""
        help_text = subprocess.run([binary, subcommand, "--help"], capture_output=True, text=True).stdout
        checks.append((f"{name}: subcommand {subcommand!r} exists", bool(help_text)))
        for arg in command[1:]:
            if arg.startswith("--"):
                checks.append((f"{name}: flag {arg} exists", arg in help_text))
        for var in service.get("environment", {}):
            if var.startswith("GATEHOUSE_"):
                checks.append((f"{name}: env {var} exists", var in help_text))
    checks.append(("Dockerfile builds the gatehouse binary", "--bin gatehouse" in open("Dockerfile").read()))
    failed = [name for name, ok in checks if not ok]
    for name in failed:
        print(f"FAILED: {name}")
    print(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
