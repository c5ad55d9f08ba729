"""Validates docker-compose.yml as far as a machine without a Docker engine can: it parses,
Kafka's image version equals the broker the tests run (scripts/kafka/pom.xml), and every
flag and environment variable given to gatehouse exists in `gatehouse serve --help`.

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
    help_text = subprocess.run([binary, "serve", "--help"], capture_output=True, text=True, check=True).stdout
    checks = []
    services = compose.get("services", {})
    checks.append(("services kafka and gatehouse", {"kafka", "gatehouse"} <= set(services)))
    checks.append((f"kafka image is apache/kafka:{kafka_version}",
                   services.get("kafka", {}).get("image") == f"apache/kafka:{kafka_version}"))
    gatehouse = services.get("gatehouse", {})
    for arg in gatehouse.get("command", [])[1:]:
        if arg.startswith("--"):
            checks.append((f"flag {arg} exists", arg in help_text))
    for var in gatehouse.get("environment", {}):
        if var.startswith("GATEHOUSE_"):
            checks.append((f"env {var} exists", var in help_text))
    checks.append(("Dockerfile builds the gatehouse binary", "--bin gatehouse" in open("Dockerfile").read()))
    failed = [name for name, ok in checks if not ok]
    for name in failed:
        print(f"FAILED: {name}")
    print(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
